"""Benchmark suite (`make bench`): LBP layer vs scikit-image, training step per ablation vs vgg16, the fast
paths (channels_last, bf16 autocast, torch.compile) on the full model and vgg16, data loader vs training
throughput (and persistent loader workers on vs off), eager vs exported inference (TorchScript, ONNX
Runtime), int8 ONNX Runtime (static QDQ) vs fp32 eager, video end to end (decode, detection, prediction) on a
640x480 clip generated here, peak memory. Every figure is the median of several timed repeats after a warm-up, with min and
max; ratios compare figures from this one run.

Writes logs/bench/bench.json and logs/bench/bench.md and prints the table. ``--quick`` runs every section
at toy sizes in well under a minute, to check the script (its figures mean nothing).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from skimage.feature import local_binary_pattern as sk_lbp

from fer_attention.data.augment import build_augmentation
from fer_attention.data.dataset import FaceArrayDataset
from fer_attention.data.synthetic import render_synthetic_faces
from fer_attention.export import example_faces, export_onnx, export_torchscript
from fer_attention.lbp import LBPLayer
from fer_attention.models import FERAttentionNet
from fer_attention.runtime import tune_malloc

ABLATIONS = {
    "full": dict(lbp=True, attention=True, reconstruction=True),
    "no_lbp": dict(lbp=False, attention=True, reconstruction=True),
    "no_attention": dict(lbp=True, attention=False, reconstruction=True),
    "no_reconstruction": dict(lbp=True, attention=True, reconstruction=False),
    "vgg16": dict(lbp=False, attention=False, reconstruction=False),
}
LBP_METHODS = ("default", "ror", "uniform", "nri_uniform", "var")
# Fast paths of the training step: memory format and autocast; "compile" is eager fp32 + torch.compile.
FAST_PATHS = {
    "fp32": dict(channels_last=False, bf16=False),
    "channels_last": dict(channels_last=True, bf16=False),
    "bf16": dict(channels_last=False, bf16=True),
    "channels_last_bf16": dict(channels_last=True, bf16=True),
}
# A fast path is worth making the default when it is at least this much faster at every measured size.
DEFAULT_MIN_SPEEDUP = 1.10
# ... and, for torch.compile, when it repays its compilation within about one `make train` run
# (quickstart: 25 epochs of 32 steps).
COMPILE_BREAK_EVEN_STEPS = 800
DEFAULT_AUGMENT = [
    {"_target_": "albumentations.HorizontalFlip", "p": 0.5},
    {
        "_target_": "albumentations.Affine",
        "translate_percent": [-0.06, 0.06],
        "scale": [0.92, 1.08],
        "rotate": [-10, 10],
        "p": 0.8,
    },
    {
        "_target_": "albumentations.RandomBrightnessContrast",
        "brightness_limit": 0.2,
        "contrast_limit": 0.2,
        "p": 0.5,
    },
]


def timeit(fn: Callable[[], object], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Seconds per call: median, min, max over ``repeats`` after ``warmup`` calls; with the kernel time
    (``kernel_s``, all threads) and minor page faults per timed call, which show allocator costs."""
    for _ in range(warmup):
        fn()
    times = []
    before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "median": statistics.median(times),
        "min": min(times),
        "max": max(times),
        "repeats": repeats,
        "kernel_s": (after.ru_stime - before.ru_stime) / repeats,
        "page_faults": (after.ru_minflt - before.ru_minflt) / repeats,
    }


def build(ablation: str, size: int, width: float) -> FERAttentionNet:
    return FERAttentionNet(
        num_classes=7,
        image_size=size,
        lbp={"method": "default", "P": 8, "R": 1.0},
        modules={"name": ablation, **ABLATIONS[ablation]},
        backbone={"width": width},
    )


def bench_lbp(faces: np.ndarray, repeats: int) -> dict:
    out = {}
    x = torch.from_numpy(faces).float().div(255).unsqueeze(1)
    for method in LBP_METHODS:
        layer = LBPLayer(method, 8, 1.0)
        t_torch = timeit(lambda layer=layer: layer(x), repeats)
        t_sk = timeit(lambda m=method: [sk_lbp(im, 8, 1.0, m) for im in faces], max(1, repeats // 2))
        out[method] = {
            "torch_faces_per_s": len(faces) / t_torch["median"],
            "skimage_faces_per_s": len(faces) / t_sk["median"],
            "speedup": t_sk["median"] / t_torch["median"],
            "torch_s": t_torch,
            "skimage_s": t_sk,
        }
    return out


def train_step_fn(
    net: torch.nn.Module, batch: int, size: int, channels_last: bool = False, bf16: bool = False
) -> Callable[[], None]:
    """One AdamW training step on a fixed random batch, as FERModule runs it with ``model.channels_last``
    (NHWC weights and batch) and ``trainer.precision=bf16-mixed`` (the forward under bf16 autocast)."""
    x = torch.rand(batch, 1, size, size)
    y = torch.randint(0, 7, (batch,))
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    net.train()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    return step


def bench_train_steps(sizes: list[int], batch: int, width: float, repeats: int) -> dict:
    out: dict = {}
    for size in sizes:
        row = {}
        for ablation in ABLATIONS:
            try:
                net = build(ablation, size, width)
            except ValueError as err:
                row[ablation] = {"error": str(err)}
                continue
            t = timeit(train_step_fn(net, batch, size), repeats, warmup=2)
            row[ablation] = {**_ms(t), "params": sum(p.numel() for p in net.parameters())}
        vgg = row["vgg16"]["ms_per_step"]
        for r in row.values():
            if "ms_per_step" in r:
                r["ratio_vs_vgg16"] = r["ms_per_step"] / vgg
        layer, x = LBPLayer("default", 8, 1.0), torch.rand(batch, 1, size, size)
        lbp_ms = 1000 * timeit(lambda layer=layer, x=x: layer(x), repeats)["median"]
        row["lbp_share_of_full_step"] = lbp_ms / row["full"]["ms_per_step"]
        out[str(size)] = row
    out["ratio_full_vs_vgg16"] = {size: row["full"]["ratio_vs_vgg16"] for size, row in out.items()}
    return out


def _ms(t: dict[str, float]) -> dict[str, float]:
    return {
        "ms_per_step": 1000 * t["median"],
        "ms_min": 1000 * t["min"],
        "ms_max": 1000 * t["max"],
        "kernel_ms_per_step": 1000 * t["kernel_s"],
        "page_faults_per_step": t["page_faults"],
    }


EXPORTS = ("torchscript", "onnxruntime")
MS_KEYS = ("ms_per_step", "ms_min", "ms_max", "kernel_ms_per_step", "page_faults_per_step")


def bench_compile(size: int, batch: int, width: float, repeats: int) -> dict:
    """Full model, eager fp32 + ``nn.Module.compile()`` (as ``model.compile=true``): the first step (Dynamo
    + Inductor compilation, forward and backward, with an empty Inductor cache, as in a first run) timed
    apart from the steady-state steps."""
    net = build("full", size, width)
    net.compile()
    step = train_step_fn(net, batch, size)
    with tempfile.TemporaryDirectory() as cache:
        previous = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        torch._dynamo.reset()
        try:
            start = time.perf_counter()
            step()
            compile_s = time.perf_counter() - start
            t = timeit(step, repeats, warmup=1)
        finally:
            if previous is None:
                os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = previous
            torch._dynamo.reset()
    return {"full": _ms(t), "compile_s": compile_s}


def bench_fast_paths(
    sizes: list[int], batch: int, width: float, repeats: int, train_step: dict, compile_sizes: list[int]
) -> dict:
    """Training step of the full model and of vgg16 under each fast path; ``fp32`` is the plain eager step
    of the ``train_step`` section (same run). Speedups are of the full model against ``fp32``."""
    out: dict = {"train_step": {}}
    for size in sizes:
        base = train_step[str(size)]
        row: dict = {
            "fp32": {
                "full": {k: v for k, v in base["full"].items() if k in MS_KEYS},
                "vgg16": {k: v for k, v in base["vgg16"].items() if k in MS_KEYS},
            }
        }
        for name, opts in FAST_PATHS.items():
            if name == "fp32":
                continue
            row[name] = {
                model: _ms(timeit(train_step_fn(build(model, size, width), batch, size, **opts), repeats, 2))
                for model in ("full", "vgg16")
            }
        if size in compile_sizes:
            row["compile"] = bench_compile(size, batch, width, repeats)
        else:
            row["compile"] = {
                "skipped": "not timed at this size (--compile-sizes): compiling takes about a minute per size on 2 cores"
            }
        fp32_ms = row["fp32"]["full"]["ms_per_step"]
        for r in row.values():
            if "full" not in r:
                continue
            r["speedup"] = fp32_ms / r["full"]["ms_per_step"]
            if "vgg16" in r:
                r["ratio_full_vs_vgg16"] = r["full"]["ms_per_step"] / r["vgg16"]["ms_per_step"]
        if "compile_s" in row["compile"]:
            saved_s = (fp32_ms - row["compile"]["full"]["ms_per_step"]) / 1000
            row["compile"]["break_even_steps"] = (
                row["compile"]["compile_s"] / saved_s if saved_s > 0 else None
            )
        out["train_step"][str(size)] = row
    out["defaults"] = fast_path_defaults(out["train_step"])
    return out


def fast_path_defaults(rows: dict) -> dict:
    """Which fast path to make the default, from the numbers: at least DEFAULT_MIN_SPEEDUP at every
    measured size; bf16 also changes the results (bf16 rounding), so it is only ever marked opt-in;
    compile must also repay its compile time within COMPILE_BREAK_EVEN_STEPS steps."""
    out = {}
    for name in ("channels_last", "bf16", "channels_last_bf16", "compile"):
        measured = [row[name] for row in rows.values() if "speedup" in row[name]]
        if not measured:
            out[name] = {"default": False, "why": "not measured"}
            continue
        low = min(r["speedup"] for r in measured)
        faster = low >= DEFAULT_MIN_SPEEDUP
        if not faster:
            why = f"no: {low:.2f}x at worst (needs >= {DEFAULT_MIN_SPEEDUP:.2f}x at every size)"
            default = False
        elif "bf16" in name:
            why = f"opt-in: >= {low:.2f}x, but bf16 rounding changes the results; check accuracy first"
            default = False
        elif name == "compile":
            steps = [r.get("break_even_steps") for r in measured]
            default = all(s is not None and s <= COMPILE_BREAK_EVEN_STEPS for s in steps)
            worst = max(s for s in steps if s is not None)
            why = (
                f"{'yes' if default else 'no'}: >= {low:.2f}x, compilation repaid after {worst:,.0f} steps "
                f"(limit {COMPILE_BREAK_EVEN_STEPS})"
            )
        else:
            why = f"yes: >= {low:.2f}x at every size, same results up to fp32 rounding"
            default = True
        out[name] = {"default": default, "min_speedup": low, "why": why}
    return out


def bench_data(
    faces: np.ndarray, labels: np.ndarray, batch: int, workers: int, train_ms_per_step: float, repeats: int
) -> dict:
    dataset = FaceArrayDataset(faces, labels, build_augmentation(DEFAULT_AUGMENT))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=workers > 0
    )

    def one_epoch() -> None:
        for _ in loader:
            pass

    t = timeit(one_epoch, repeats)
    loader_fps = len(faces) / t["median"]
    train_fps = batch / (train_ms_per_step / 1000)
    return {
        "loader_faces_per_s": loader_fps,
        "train_faces_per_s": train_fps,
        "ratio_loader_vs_train": loader_fps / train_fps,
        "workers": workers,
        "epoch_s": t,
    }


def bench_loader_workers(
    faces: np.ndarray,
    labels: np.ndarray,
    batch: int,
    workers: int,
    epochs: int,
    repeats: int,
    warmup: int = 1,
) -> dict:
    """Faces/s of ``epochs`` epochs through a fresh DataLoader with ``workers`` workers, worker start-up
    included, with ``persistent_workers`` off (workers restarted every epoch) and on."""
    dataset = FaceArrayDataset(faces, labels, build_augmentation(DEFAULT_AUGMENT))
    out: dict = {"workers": workers, "epochs": epochs}
    for persistent in (False, True):

        def run(persistent: bool = persistent) -> None:
            loader = torch.utils.data.DataLoader(
                dataset, batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=persistent
            )
            for _ in range(epochs):
                for _ in loader:
                    pass
            del loader  # shuts persistent workers down inside the timing

        t = timeit(run, repeats, warmup=warmup)
        out["persistent" if persistent else "not_persistent"] = {
            "faces_per_s": epochs * len(faces) / t["median"],
            "s": t,
        }
    out["speedup_persistent"] = out["persistent"]["faces_per_s"] / out["not_persistent"]["faces_per_s"]
    out["default"] = out["speedup_persistent"] >= DEFAULT_MIN_SPEEDUP
    return out


def onnxruntime_session(net: torch.nn.Module, size: int, threads: int, tmp: str):
    """``fer-export format=onnx``'s model in an ONNX Runtime CPU session; None without the export extra."""
    if importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime as ort

    path = export_onnx(net, size, Path(tmp) / "bench.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(["logits"], {"faces": x.numpy()})[0])


def bench_inference(size: int, width: float, repeats: int, threads: int, channels_last: bool) -> dict:
    """Eager (NCHW and channels_last) against the exported models of `fer-export` (TorchScript always,
    ONNX Runtime with the export extra), exported from the network as conf/ configures it (as `fer-export`
    gets it from a checkpoint). ``ratio_export_vs_eager`` is the best exported path's (``best_export``)
    against eager as configured (``eager_baseline``)."""
    net = build("full", size, width).eval()
    one, many = example_faces(1, size), example_faces(64, size, seed=1)
    out: dict = {}
    with torch.no_grad(), tempfile.TemporaryDirectory() as tmp:
        models = {"eager": net}
        models["eager_channels_last"] = (
            build("full", size, width).eval().to(memory_format=torch.channels_last)
        )
        models["eager_channels_last"].load_state_dict(net.state_dict())
        baseline = "eager_channels_last" if channels_last else "eager"
        configured = models[baseline]
        models["torchscript"] = torch.jit.load(
            str(export_torchscript(configured, size, Path(tmp) / "bench.pt"))
        )
        ort_run = onnxruntime_session(configured, size, threads, tmp)
        if ort_run is not None:
            models["onnxruntime"] = ort_run
        else:
            out["onnxruntime"] = {"skipped": "onnx/onnxruntime not installed: pip install -e '.[export]'"}
        ref = net(many)
        for name, model in models.items():
            diff = float((model(many) - ref).abs().max())
            assert diff <= 1e-4, f"{name} output differs from eager by {diff:.2e}"
            t1 = timeit(lambda m=model: m(one), repeats * 4, warmup=3)
            t64 = timeit(lambda m=model: m(many), repeats, warmup=2)
            out[name] = {
                "ms_per_face_batch1": 1000 * t1["median"],
                "faces_per_s_batch64": 64 / t64["median"],
                "max_abs_diff_vs_eager": diff,
            }
    eager = out[baseline]
    for name in EXPORTS:
        if "faces_per_s_batch64" in out[name]:
            out[name]["ratio_vs_eager"] = out[name]["faces_per_s_batch64"] / eager["faces_per_s_batch64"]
            out[name]["ratio_vs_eager_batch1"] = eager["ms_per_face_batch1"] / out[name]["ms_per_face_batch1"]
    best = max((n for n in EXPORTS if "ratio_vs_eager" in out[n]), key=lambda n: out[n]["ratio_vs_eager"])
    out["eager_baseline"] = baseline
    out["best_export"] = best
    out["ratio_export_vs_eager"] = out[best]["ratio_vs_eager"]
    out["ratio_export_vs_eager_batch1"] = out[best]["ratio_vs_eager_batch1"]
    return out


# int8 target: ONNX Runtime int8 at batch 64 at least this many times fp32 eager (as configured)
INT8_TARGET = 2.0
# video target: frames/s end to end, 640x480, one face, every frame labelled
VIDEO_TARGET_FPS = 25.0
VIDEO_SIZE = (640, 480)


def bench_int8(
    size: int, width: float, repeats: int, threads: int, eager: dict, faces: np.ndarray, calib: int
) -> dict:
    """int8 ONNX Runtime (`fer-export format=onnx quantize=int8`: static QDQ, calibrated on ``calib``
    synthetic faces) against fp32 eager as configured (``eager``: that row of the inference section, same
    network, size, width and threads). Also the top-1 agreement of int8 with fp32 on the other faces (a
    network with random weights: the accuracy drop on a trained model is what `fer-export` prints)."""
    if importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxruntime") is None:
        return {"skipped": "onnx/onnxruntime not installed: pip install -e '.[export]'"}
    from fer_attention.export import OnnxRuntimeNet, ort_session
    from fer_attention.quantize import quantize_onnx

    net = build("full", size, width).eval()
    one, many = example_faces(1, size), example_faces(64, size, seed=1)
    with torch.no_grad(), tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(net, size, Path(tmp) / "fp32.onnx")
        start = time.perf_counter()
        quantize_onnx(fp32, Path(tmp) / "int8.onnx", faces[:calib])
        quantize_s = time.perf_counter() - start
        int8 = OnnxRuntimeNet(ort_session(Path(tmp) / "int8.onnx", threads))
        t1 = timeit(lambda: int8(one), repeats * 4, warmup=3)
        t64 = timeit(lambda: int8(many), repeats, warmup=2)
        held = torch.from_numpy(faces[calib:]).float().div(255).unsqueeze(1)
        agreement = float((int8(held).argmax(1) == net(held).argmax(1)).float().mean()) if len(held) else None
    out = {
        "ms_per_face_batch1": 1000 * t1["median"],
        "faces_per_s_batch64": 64 / t64["median"],
        "eager_ms_per_face_batch1": eager["ms_per_face_batch1"],
        "eager_faces_per_s_batch64": eager["faces_per_s_batch64"],
        "calib_faces": int(min(calib, len(faces))),
        "heldout_faces": int(len(held)),
        "agreement_vs_fp32": agreement,
        "quantize_s": quantize_s,
    }
    out["ratio_vs_eager"] = out["faces_per_s_batch64"] / eager["faces_per_s_batch64"]
    out["ratio_vs_eager_batch1"] = eager["ms_per_face_batch1"] / out["ms_per_face_batch1"]
    return out


def write_bench_clip(path: Path, frames: int, fps: float = 25.0, face_px: int = 160) -> Path:
    """A 640x480 clip (mp4v) of one synthetic face drifting over a textured background, as a webcam
    shows one person."""
    import cv2

    face = render_synthetic_faces(num_subjects=1, frames_per_sequence=1, image_size=face_px, seed=5).images[3]
    w, h = VIDEO_SIZE
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(40, 200, (h, w), dtype=np.uint8), (0, 0), 6)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, VIDEO_SIZE)
    for i in range(frames):
        frame = background.copy()
        x = 160 + int(120 * np.sin(i / 20))
        y = 140 + int(30 * np.cos(i / 15))
        frame[y : y + face_px, x : x + face_px] = face
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def bench_video(width: float, frames: int, repeats: int, channels_last: bool) -> dict:
    """`model.predict_video` end to end (decode, Haar detection, tracking, the network on every frame's
    face) on a generated 640x480 clip with one face, every frame labelled (stride 1): frames per second."""
    from fer_attention.data.synthetic import CLASS_NAMES
    from fer_attention.inference import FERPredictor
    from fer_attention.video import predict_video

    net = build("full", 48, width).eval()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    model = FERPredictor(net, list(CLASS_NAMES), 48)
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_bench_clip(Path(tmp) / "clip.mp4", frames)
        rows: list = []

        def run() -> None:
            rows[:] = list(predict_video(model, clip, stride=1))

        t = timeit(run, repeats, warmup=1)
    faces = [r for r in rows if r["error"] is None]
    return {
        "frames": frames,
        "size": f"{VIDEO_SIZE[0]}x{VIDEO_SIZE[1]}",
        "frames_per_s": frames / t["median"],
        "frames_with_face": len({r["frame"] for r in faces}),
        "tracks": len({r["track"] for r in faces}),
        "s": t,
    }


def configured_malloc() -> dict:
    """The malloc thresholds conf/train.yaml ships (what `fer-train` applies at start)."""
    from omegaconf import OmegaConf

    from fer_attention.config import config_dir

    return dict(OmegaConf.to_container(OmegaConf.load(Path(config_dir()) / "train.yaml")).get("malloc") or {})


def _allocator_child(
    tuned: bool, sizes: list[int], batch: int, width: float, threads: int, repeats: int
) -> dict:
    torch.set_num_threads(threads)
    applied = tune_malloc(**configured_malloc()) if tuned else False
    out: dict = {"applied": applied}
    for size in sizes:
        out[str(size)] = {
            model: _ms(
                timeit(train_step_fn(build(model, size, width), batch, size, channels_last=True), repeats, 2)
            )
            for model in ("full", "vgg16")
        }
    return out


def bench_allocator(sizes: list[int], batch: int, width: float, threads: int, repeats: int) -> dict:
    """Training step (channels_last, as configured) of the full model and vgg16 in two fresh processes:
    glibc's default malloc thresholds vs the ``malloc`` thresholds of conf/train.yaml. Fresh processes
    because the thresholds cannot be unset, and because the allocator's state depends on what ran before."""
    out: dict = {"thresholds": configured_malloc()}
    for mode, tuned in (("glibc_default", False), ("tuned", True)):
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            out[mode] = pool.submit(_allocator_child, tuned, sizes, batch, width, threads, repeats).result()
    for size in sizes:
        d, t = out["glibc_default"][str(size)], out["tuned"][str(size)]
        out[str(size)] = {
            "speedup_full": d["full"]["ms_per_step"] / t["full"]["ms_per_step"],
            "speedup_vgg16": d["vgg16"]["ms_per_step"] / t["vgg16"]["ms_per_step"],
            "ratio_full_vs_vgg16_default": d["full"]["ms_per_step"] / d["vgg16"]["ms_per_step"],
            "ratio_full_vs_vgg16_tuned": t["full"]["ms_per_step"] / t["vgg16"]["ms_per_step"],
        }
    return out


def _peak_memory_child(size: int, batch: int, width: float, threads: int) -> float:
    torch.set_num_threads(threads)
    tune_malloc(**configured_malloc())
    step = train_step_fn(build("full", size, width), batch, size)
    step()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_memory_mb(size: int, batch: int, width: float, threads: int, fresh_process: bool = True) -> float:
    """Peak resident memory (MB, ru_maxrss) of a fresh process after one full-model fp32 training step,
    so that the larger sizes and fast paths benchmarked before do not count (``fresh_process=False``:
    this process's peak so far)."""
    if not fresh_process:
        return _peak_memory_child(size, batch, width, threads)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_peak_memory_child, size, batch, width, threads).result()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def markdown(results: dict) -> str:
    m = results["meta"]
    lines = [
        f"# Benchmark ({m['date']})",
        "",
        f"Machine: {m['machine']}; torch {m['torch']}, {m['threads']} threads; "
        f"width {m['width']}, batch {m['batch']}. Medians of {m['repeats']} repeats after warm-up. "
        f"glibc malloc thresholds as fer-train sets them (conf/train.yaml `malloc`): "
        f"{'applied' if m.get('malloc', {}).get('applied') else 'not applied'} to every section but the allocator "
        "comparison.",
        "",
    ]
    if m.get("quick"):
        lines += [
            "**Quick mode (`--quick`): toy sizes to check the script; these figures mean nothing.**",
            "",
        ]
    lines += [
        f"## LBP layer vs scikit-image loop ({m.get('lbp_faces', 1024):,} faces, 48x48, P=8, R=1)",
        "",
        "| method | torch faces/s | skimage faces/s | speedup | target >= 5x |",
        "|---|---|---|---|---|",
    ]
    for method, r in results["lbp"].items():
        ok = "met" if r["speedup"] >= 5 else "MISSED"
        lines.append(
            f"| {method} | {r['torch_faces_per_s']:,.0f} | {r['skimage_faces_per_s']:,.0f} | {r['speedup']:.1f}x | {ok} |"
        )
    for size, row in results["train_step"].items():
        if size == "ratio_full_vs_vgg16":
            continue
        lines += [
            "",
            f"## Training step at {size}x{size}, batch {m['batch']}",
            "",
            "| network | ms/step (min-max) | ratio to vgg16 | kernel ms/step (page faults) | parameters |",
            "|---|---|---|---|---|",
        ]
        for name, r in row.items():
            if name == "lbp_share_of_full_step":
                continue
            if "error" in r:
                lines.append(f"| {name} | - | - | - | {r['error']} |")
                continue
            lines.append(
                f"| {name} | {r['ms_per_step']:.0f} ({r['ms_min']:.0f}-{r['ms_max']:.0f}) | "
                f"{r['ratio_vs_vgg16']:.2f} | {r['kernel_ms_per_step']:.0f} ({r['page_faults_per_step']:,.0f}) | "
                f"{r['params']:,} |"
            )
        ratio = row["full"]["ratio_vs_vgg16"]
        lines.append("")
        lines.append(
            f"Full vs vgg16: {ratio:.2f}x (target <= 2.5x: {'met' if ratio <= 2.5 else 'MISSED'}; kernel time "
            f"(page faults, system calls) {row['full']['kernel_ms_per_step']:.0f} vs "
            f"{row['vgg16']['kernel_ms_per_step']:.0f} ms/step); "
            f"LBP layer = {100 * row['lbp_share_of_full_step']:.2f}% of a full step (target < 1%: "
            f"{'met' if row['lbp_share_of_full_step'] < 0.01 else 'MISSED'})."
        )
    lines += markdown_fast_paths(results["fast_paths"], m["batch"])
    lines += markdown_allocator(results["fast_paths"]["allocator"], m["batch"])
    d = results["data"]
    lines += [
        "",
        "## Data pipeline",
        "",
        f"Loader (decoded arrays, training augmentation, {d['workers']} workers): {d['loader_faces_per_s']:,.0f} faces/s; "
        f"full-model training: {d['train_faces_per_s']:,.0f} faces/s; ratio {d['ratio_loader_vs_train']:.1f}x "
        f"(target >= 10x: {'met' if d['ratio_loader_vs_train'] >= 10 else 'MISSED'}).",
    ]
    w = results["fast_paths"]["loader_workers"]
    lines += [
        "",
        f"Loader with {w['workers']} workers, {w['epochs']} epochs through a fresh DataLoader, worker start-up "
        f"included: {w['not_persistent']['faces_per_s']:,.0f} faces/s with `persistent_workers=false`, "
        f"{w['persistent']['faces_per_s']:,.0f} faces/s with `true` ({w['speedup_persistent']:.2f}x; "
        f"worth the default whenever `data.num_workers > 0`: {'yes' if w['default'] else 'no'}, "
        f"needs >= {DEFAULT_MIN_SPEEDUP:.2f}x).",
    ]
    i = results["inference"]
    base_label = {"eager": "eager (NCHW)", "eager_channels_last": "eager (channels_last)"}
    lines += [
        "",
        "## Inference (full model, 48x48)",
        "",
        f"| | ms/face, batch 1 | faces/s, batch 64 | vs {base_label[i['eager_baseline']]}, batch 1 | batch 64 |",
        "|---|---|---|---|---|",
    ]
    rows = (*base_label.items(), ("torchscript", "TorchScript"), ("onnxruntime", "ONNX Runtime"))
    for name, label in rows:
        r = i[name]
        if "skipped" in r:
            lines.append(f"| {label} | - | - | - | skipped: {r['skipped']} |")
            continue
        if name in EXPORTS:
            ratios = f"{r['ratio_vs_eager_batch1']:.2f}x | {r['ratio_vs_eager']:.2f}x"
        else:
            ratios = "(baseline) | (baseline)" if name == i["eager_baseline"] else "- | -"
        lines.append(
            f"| {label} | {r['ms_per_face_batch1']:.2f} | {r['faces_per_s_batch64']:,.0f} | {ratios} |"
        )
    best = {"torchscript": "TorchScript", "onnxruntime": "ONNX Runtime"}[i["best_export"]]
    lines.append("")
    lines.append(
        f"Best exported path, {best}, vs {base_label[i['eager_baseline']]} (eager as conf/ configures it): "
        f"{i['ratio_export_vs_eager']:.2f}x at batch 64, {i['ratio_export_vs_eager_batch1']:.2f}x at batch 1 "
        f"(target >= 1.3x: {'met' if i['ratio_export_vs_eager'] >= 1.3 else 'MISSED'})."
    )
    lines += markdown_int8_video(results, base_label[i["eager_baseline"]])
    lines += [
        "",
        f"Peak memory (RSS of a fresh process) after one full-model training step at 48x48: "
        f"{results['peak_memory_mb']:.0f} MB.",
    ]
    return "\n".join(lines) + "\n"


def markdown_int8_video(results: dict, eager_label: str) -> list[str]:
    q, v = results["int8"], results["video"]
    lines = ["", "## int8 ONNX Runtime vs fp32 eager (full model, 48x48)", ""]
    if "skipped" in q:
        lines.append(f"Skipped: {q['skipped']}.")
    else:
        agree = "-" if q["agreement_vs_fp32"] is None else f"{100 * q['agreement_vs_fp32']:.1f}%"
        lines += [
            "| | ms/face, batch 1 | faces/s, batch 64 |",
            "|---|---|---|",
            f"| fp32 {eager_label} | {q['eager_ms_per_face_batch1']:.2f} | {q['eager_faces_per_s_batch64']:,.0f} |",
            f"| int8 ONNX Runtime (static QDQ) | {q['ms_per_face_batch1']:.2f} | {q['faces_per_s_batch64']:,.0f} |",
            f"| int8 / fp32 | {q['ratio_vs_eager_batch1']:.2f}x | {q['ratio_vs_eager']:.2f}x |",
            "",
            f"int8 vs fp32 eager at batch 64: {q['ratio_vs_eager']:.2f}x (target >= {INT8_TARGET:.0f}x: "
            f"{'met' if q['ratio_vs_eager'] >= INT8_TARGET else 'MISSED'}). Calibrated on {q['calib_faces']} "
            f"synthetic faces in {q['quantize_s']:.1f} s; top-1 agreement with fp32 on {q['heldout_faces']} "
            f"others: {agree} (random weights here; `fer-export quantize=int8` prints the accuracy drop of a "
            "trained model on its test split).",
        ]
    lines += [
        "",
        f"## Video end to end ({v['size']}, one face, every frame labelled)",
        "",
        f"`model.predict_video` (decode, Haar detection, tracking, network): {v['frames_per_s']:.1f} frames/s "
        f"over {v['frames']} frames (target >= {VIDEO_TARGET_FPS:.0f}: "
        f"{'met' if v['frames_per_s'] >= VIDEO_TARGET_FPS else 'MISSED'}); a face found in "
        f"{v['frames_with_face']} of {v['frames']} frames, {v['tracks']} track(s).",
    ]
    return lines


def markdown_allocator(a: dict, batch: int) -> list[str]:
    th = a["thresholds"]
    lines = [
        "",
        f"## Allocator: glibc default vs `malloc` thresholds (mmap {th.get('mmap_threshold_mb')} MB, trim "
        f"{th.get('trim_threshold_mb')} MB), batch {batch}, channels_last, each in a fresh process",
        "",
        "| size | full ms/step default -> tuned | vgg16 ms/step default -> tuned | speedup full | full / vgg16 default -> tuned |",
        "|---|---|---|---|---|",
    ]
    if not a["tuned"].get("applied"):
        lines.insert(2, "(not glibc: the thresholds could not be applied, both columns are the default)")
    for size, r in a.items():
        if not size.isdigit():
            continue
        d, t = a["glibc_default"][size], a["tuned"][size]
        lines.append(
            f"| {size}x{size} | {d['full']['ms_per_step']:.0f} -> {t['full']['ms_per_step']:.0f} | "
            f"{d['vgg16']['ms_per_step']:.0f} -> {t['vgg16']['ms_per_step']:.0f} | {r['speedup_full']:.2f}x | "
            f"{r['ratio_full_vs_vgg16_default']:.2f} -> {r['ratio_full_vs_vgg16_tuned']:.2f} |"
        )
    return lines


def markdown_fast_paths(fast: dict, batch: int) -> list[str]:
    labels = {
        "fp32": "eager fp32 (baseline)",
        "channels_last": "channels_last",
        "bf16": "bf16 autocast",
        "channels_last_bf16": "channels_last + bf16",
        "compile": "torch.compile",
    }
    defaults = fast["defaults"]
    lines: list[str] = []
    for size, row in fast["train_step"].items():
        lines += [
            "",
            f"## Fast paths: training step at {size}x{size}, batch {batch}",
            "",
            "| path | full ms/step (min-max) | full kernel ms/step | speedup | vgg16 ms/step | full / vgg16 "
            "| kept as default? |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, r in row.items():
            if "skipped" in r:
                lines.append(f"| {labels[name]} | - | - | - | - | - | skipped: {r['skipped']} |")
                continue
            full = r["full"]
            vgg = f"{r['vgg16']['ms_per_step']:.0f}" if "vgg16" in r else "-"
            ratio = f"{r['ratio_full_vs_vgg16']:.2f}" if "ratio_full_vs_vgg16" in r else "-"
            if name == "fp32":
                kept = "(baseline)"
            else:
                kept = defaults[name]["why"]
            if name == "compile":
                kept += f"; first step {r['compile_s']:.0f} s (compilation)"
            lines.append(
                f"| {labels[name]} | {full['ms_per_step']:.0f} ({full['ms_min']:.0f}-{full['ms_max']:.0f}) | "
                f"{full['kernel_ms_per_step']:.0f} | {r['speedup']:.2f}x | {vgg} | {ratio} | {kept} |"
            )
        best = min(
            (n for n in row if "ratio_full_vs_vgg16" in row[n]), key=lambda n: row[n]["ratio_full_vs_vgg16"]
        )
        default = "channels_last" if fast["config"]["channels_last"] else "fp32"
        ratio = row[default]["ratio_full_vs_vgg16"]
        lines += [
            "",
            f"Full vs vgg16 as configured (`model.channels_last={str(default != 'fp32').lower()}`, "
            f"`trainer.precision=32-true`): {ratio:.2f}x (target <= 2.5x: {'met' if ratio <= 2.5 else 'MISSED'}); "
            f"lowest, {labels[best]}: {row[best]['ratio_full_vs_vgg16']:.2f}x.",
        ]
    if defaults["channels_last"]["default"] != fast["config"]["channels_last"]:
        lines += [
            "",
            f"Note: these numbers say channels_last {'should' if defaults['channels_last']['default'] else 'should not'} "
            f"be the default, but conf/model/fer_attention.yaml has `channels_last: "
            f"{str(fast['config']['channels_last']).lower()}`.",
        ]
    return lines


def configured_defaults() -> dict:
    """The fast-path switches as conf/ ships them (what `fer-train` runs without overrides)."""
    from omegaconf import OmegaConf

    from fer_attention.config import config_dir

    model = OmegaConf.load(Path(config_dir()) / "model" / "fer_attention.yaml")
    return {
        "channels_last": bool(model.get("channels_last", False)),
        "compile": bool(model.get("compile", False)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--width", type=float, default=None, help="VGG16 channel multiplier (1.0 = the paper's; default 0.25)"
    )
    parser.add_argument("--batch", type=int, default=None, help="default 64")
    parser.add_argument("--sizes", default=None, help="training-step image sizes (default 48,96)")
    parser.add_argument("--repeats", type=int, default=None, help="default 5")
    parser.add_argument(
        "--workers", type=int, default=0, help="loader workers of the loader-vs-training ratio"
    )
    parser.add_argument(
        "--loader-workers", type=int, default=2, help="workers of the persistent_workers on/off comparison"
    )
    parser.add_argument(
        "--compile-sizes",
        default=None,
        help="sizes at which to time torch.compile (default 48; compiling takes minutes on 2 cores); 'none' skips",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: up to 2; --quick: 1)"
    )
    parser.add_argument("--out", default="logs/bench")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="toy sizes (width 0.125, batch 8, 48x48, 1 repeat, 1 thread, no torch.compile) to check the "
        "script in seconds; explicit options still apply",
    )
    args = parser.parse_args()
    defaults = (
        dict(width=0.125, batch=8, sizes="48", repeats=1, compile_sizes="none", subjects=4, lbp_faces=64)
        if args.quick
        else dict(
            width=0.25, batch=64, sizes="48,96", repeats=5, compile_sizes="48", subjects=40, lbp_faces=1024
        )
    )
    defaults["threads"] = 1 if args.quick else min(2, torch.get_num_threads())
    for key in ("width", "batch", "sizes", "repeats", "compile_sizes", "threads"):
        if getattr(args, key) is None:
            setattr(args, key, defaults[key])
    sizes = [int(s) for s in args.sizes.split(",")]
    compile_sizes = [] if args.compile_sizes == "none" else [int(s) for s in args.compile_sizes.split(",")]
    torch.set_num_threads(args.threads)
    # as fer-train does at start (conf/train.yaml `malloc`); the allocator section compares both settings
    malloc_applied = tune_malloc(**configured_malloc())
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit deprecation notices
    warnings.filterwarnings("ignore", category=UserWarning)  # tracer, ONNX exporter and Dynamo notes
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    torch.manual_seed(0)

    synthetic = render_synthetic_faces(
        num_subjects=defaults["subjects"], frames_per_sequence=4, image_size=48
    )
    faces = synthetic.images[: defaults["lbp_faces"]]
    ort_version = None
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime

        ort_version = onnxruntime.__version__
    results = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "machine": f"{cpu_name()}, {platform.system()}",
            "torch": torch.__version__,
            "onnxruntime": ort_version,
            "threads": args.threads,
            "width": args.width,
            "batch": args.batch,
            "repeats": args.repeats,
            "lbp_faces": len(faces),
            "quick": args.quick,
            "malloc": {**configured_malloc(), "applied": malloc_applied},
        },
    }
    start = time.perf_counter()

    def done(section: str) -> None:
        print(f"[bench] {section}: done at {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)

    results["lbp"] = bench_lbp(faces, args.repeats)
    done("LBP layer")
    results["train_step"] = bench_train_steps(sizes, args.batch, args.width, args.repeats)
    done("training step per ablation")
    results["fast_paths"] = bench_fast_paths(
        sizes, args.batch, args.width, args.repeats, results["train_step"], compile_sizes
    )
    results["fast_paths"]["config"] = configured_defaults()
    results["fast_paths"]["allocator"] = bench_allocator(
        sizes, args.batch, args.width, args.threads, args.repeats
    )
    done("fast paths")
    results["data"] = bench_data(
        synthetic.images,
        synthetic.labels,
        args.batch,
        args.workers,
        results["train_step"][str(sizes[0])]["full"]["ms_per_step"],
        max(2, args.repeats // 2),
    )
    results["fast_paths"]["loader_workers"] = bench_loader_workers(
        synthetic.images,
        synthetic.labels,
        args.batch,
        args.loader_workers,
        3,
        max(1, args.repeats // 2),
        warmup=0 if args.quick else 1,
    )
    done("data loader")
    results["inference"] = bench_inference(
        48, args.width, args.repeats, args.threads, results["fast_paths"]["config"]["channels_last"]
    )
    done("inference")
    baseline = results["inference"][results["inference"]["eager_baseline"]]
    results["int8"] = bench_int8(
        48, args.width, args.repeats, args.threads, baseline, faces, calib=32 if args.quick else 128
    )
    done("int8")
    results["video"] = bench_video(
        args.width,
        frames=10 if args.quick else 150,
        repeats=1 if args.quick else 3,
        channels_last=results["fast_paths"]["config"]["channels_last"],
    )
    done("video")
    results["peak_memory_mb"] = peak_memory_mb(
        48, args.batch, args.width, args.threads, fresh_process=not args.quick
    )
    results["meta"]["seconds"] = time.perf_counter() - start
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=2))
    table = markdown(results)
    (out / "bench.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()

"""Timing inference: eager (NCHW and channels_last) against the exports of `fer-export` (TorchScript, ONNX
Runtime, int8 ONNX Runtime), all through the package's export helpers (fer_attention.inference.export,
fer_attention.inference.quantize), and video end to end on a generated 640x480 clip."""

from __future__ import annotations

import importlib.util
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fer_attention.data.synthetic import render_synthetic_faces
from fer_attention.inference.export import export_torchscript
from fer_attention.inference.onnx_io import OnnxRuntimeNet, example_faces, export_onnx, ort_session

from . import config, decide
from .measure import build, timeit

ONNX_SKIPPED = "onnx/onnxruntime not installed: pip install -e '.[export]'"
VIDEO_SIZE = (640, 480)


def onnx_available() -> bool:
    """Whether the export extra (onnx and onnxruntime) is installed."""
    return (
        importlib.util.find_spec("onnx") is not None and importlib.util.find_spec("onnxruntime") is not None
    )


def onnxruntime_net(net: torch.nn.Module, size: int, threads: int, tmp: str) -> OnnxRuntimeNet | None:
    """``fer-export format=onnx``'s model in an ONNX Runtime CPU session; None without the export extra."""
    if not onnx_available():
        return None
    return OnnxRuntimeNet(ort_session(export_onnx(net, size, Path(tmp) / "bench.onnx"), threads))


def rates(model, one: torch.Tensor, many: torch.Tensor, max_run_time: float) -> dict:
    """``model``'s ms per face at batch 1 (``one``) and faces/s at batch 64 (``many``)."""
    return {
        "ms_per_face_batch1": 1000 * timeit(lambda: model(one), max_run_time)["median"],
        "faces_per_s_batch64": len(many) / timeit(lambda: model(many), max_run_time)["median"],
    }


def bench_inference(size: int, width: float, max_run_time: float, threads: int, channels_last: bool) -> dict:
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
        ort_run = onnxruntime_net(configured, size, threads, tmp)
        if ort_run is not None:
            models["onnxruntime"] = ort_run
        else:
            out["onnxruntime"] = {"skipped": ONNX_SKIPPED}
        ref = net(many)
        for name, model in models.items():
            diff = float((model(many) - ref).abs().max())
            assert diff <= 1e-4, f"{name} output differs from eager by {diff:.2e}"
            out[name] = {**rates(model, one, many, max_run_time), "max_abs_diff_vs_eager": diff}
    return decide.add_export_ratios(out, baseline)


def bench_int8(
    size: int, width: float, max_run_time: float, threads: int, eager: dict, faces: np.ndarray, calib: int
) -> dict:
    """int8 ONNX Runtime (`fer-export format=onnx quantize=int8` as conf/export.yaml configures it: static
    QDQ, calibrated on ``calib`` synthetic faces) against fp32 eager as configured (``eager``: that row of
    the inference section, same network, size, width and threads); ``alternative``: the same with the other
    activation type. Also the top-1 agreement of int8 with fp32 on the other faces (a network with random
    weights: the accuracy drop on a trained model is what `fer-export` prints)."""
    if not onnx_available():
        return {"skipped": ONNX_SKIPPED}
    from fer_attention.inference.quantize import ACTIVATIONS, quantize_onnx

    settings = config.configured_int8()
    net = build("full", size, width).eval()
    one, many = example_faces(1, size), example_faces(64, size, seed=1)
    held = torch.from_numpy(faces[calib:]).float().div(255).unsqueeze(1)
    measured = {}
    with torch.no_grad(), tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(net, size, Path(tmp) / "fp32.onnx")
        ref = net(held).argmax(1) if len(held) else None
        for activations in ACTIVATIONS:
            path = Path(tmp) / f"int8_{activations}.onnx"
            start = time.perf_counter()
            quantize_onnx(
                fp32,
                path,
                faces[:calib],
                method=settings["calib_method"],
                per_channel=settings["per_channel"],
                activations=activations,
            )
            quantize_s = time.perf_counter() - start
            int8 = OnnxRuntimeNet(ort_session(path, threads))
            measured[activations] = {
                "activations": activations,
                **rates(int8, one, many, max_run_time),
                "agreement_vs_fp32": float((int8(held).argmax(1) == ref).float().mean())
                if len(held)
                else None,
                "quantize_s": quantize_s,
            }
    order = decide.int8_order(settings["activations"], measured)
    out = {
        **measured[order[0]],
        "configured": settings["activations"],
        "eager_ms_per_face_batch1": eager["ms_per_face_batch1"],
        "eager_faces_per_s_batch64": eager["faces_per_s_batch64"],
        "calib_faces": int(min(calib, len(faces))),
        "heldout_faces": int(len(held)),
        "alternative": measured[order[1]],
    }
    out.update(decide.vs_eager(out, eager))
    out["alternative"].update(decide.vs_eager(out["alternative"], eager))
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


def bench_video(width: float, frames: int, max_run_time: float, channels_last: bool) -> dict:
    """`model.predict_video` end to end (decode, Haar detection, tracking, the network on every frame's
    face) on a generated 640x480 clip with one face, every frame labelled (stride 1): frames per second."""
    from fer_attention.data.synthetic import CLASS_NAMES
    from fer_attention.inference import FERPredictor
    from fer_attention.inference.video import predict_video

    net = build("full", 48, width).eval()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    model = FERPredictor(net, list(CLASS_NAMES), 48)
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_bench_clip(Path(tmp) / "clip.mp4", frames)
        rows: list = []

        def run() -> None:
            rows[:] = list(predict_video(model, clip, stride=1))

        t = timeit(run, max_run_time)
    faces = [r for r in rows if r["error"] is None]
    return {
        "frames": frames,
        "size": f"{VIDEO_SIZE[0]}x{VIDEO_SIZE[1]}",
        "frames_per_s": frames / t["median"],
        "frames_with_face": len({r["frame"] for r in faces}),
        "tracks": len({r["track"] for r in faces}),
        "s": t,
    }

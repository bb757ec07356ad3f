"""Benchmark suite (`make bench`): LBP layer vs scikit-image, training step per ablation vs vgg16, data
loader vs training throughput, eager vs TorchScript inference, peak memory. Every figure is the median of
several timed repeats after a warm-up, with min and max; ratios compare figures from this one run.

Writes logs/bench/bench.json and logs/bench/bench.md and prints the table.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from skimage.feature import local_binary_pattern as sk_lbp

from fer_attention.data.augment import build_augmentation
from fer_attention.data.dataset import FaceArrayDataset
from fer_attention.data.synthetic import render_synthetic_faces
from fer_attention.lbp import LBPLayer
from fer_attention.models import FERAttentionNet

ABLATIONS = {
    "full": dict(lbp=True, attention=True, reconstruction=True),
    "no_lbp": dict(lbp=False, attention=True, reconstruction=True),
    "no_attention": dict(lbp=True, attention=False, reconstruction=True),
    "no_reconstruction": dict(lbp=True, attention=True, reconstruction=False),
    "vgg16": dict(lbp=False, attention=False, reconstruction=False),
}
LBP_METHODS = ("default", "ror", "uniform", "nri_uniform", "var")
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
    """Seconds per call: median, min, max over ``repeats`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "repeats": repeats}


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


def train_step_fn(net: torch.nn.Module, batch: int, size: int) -> Callable[[], None]:
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.rand(batch, 1, size, size)
    y = torch.randint(0, 7, (batch,))
    net.train()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), y).backward()
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
            row[ablation] = {
                "ms_per_step": 1000 * t["median"],
                "ms_min": 1000 * t["min"],
                "ms_max": 1000 * t["max"],
                "params": sum(p.numel() for p in net.parameters()),
            }
        vgg = row["vgg16"]["ms_per_step"]
        for r in row.values():
            if "ms_per_step" in r:
                r["ratio_vs_vgg16"] = r["ms_per_step"] / vgg
        layer, x = LBPLayer("default", 8, 1.0), torch.rand(batch, 1, size, size)
        lbp_ms = 1000 * timeit(lambda layer=layer, x=x: layer(x), repeats)["median"]
        row["lbp_share_of_full_step"] = lbp_ms / row["full"]["ms_per_step"]
        out[str(size)] = row
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


def bench_inference(size: int, width: float, repeats: int) -> dict:
    net = build("full", size, width).eval()
    one, many = torch.rand(1, 1, size, size), torch.rand(64, 1, size, size)
    with torch.no_grad():
        traced = torch.jit.freeze(torch.jit.trace(net, many))
        out = {}
        for name, model in (("eager", net), ("torchscript", traced)):
            t1 = timeit(lambda m=model: m(one), repeats * 4, warmup=3)
            t64 = timeit(lambda m=model: m(many), repeats, warmup=2)
            out[name] = {"ms_per_face_batch1": 1000 * t1["median"], "faces_per_s_batch64": 64 / t64["median"]}
        assert torch.allclose(net(many), traced(many), atol=1e-4), "TorchScript output differs from eager"
    out["ratio_export_vs_eager"] = (
        out["torchscript"]["faces_per_s_batch64"] / out["eager"]["faces_per_s_batch64"]
    )
    out["ratio_export_vs_eager_batch1"] = (
        out["eager"]["ms_per_face_batch1"] / out["torchscript"]["ms_per_face_batch1"]
    )
    return out


def peak_memory_mb(size: int, batch: int, width: float) -> float:
    """Peak resident memory (MB) of this process after one full-model training step (CPU: ru_maxrss)."""
    step = train_step_fn(build("full", size, width), batch, size)
    step()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
        f"width {m['width']}, batch {m['batch']}. Medians of {m['repeats']} repeats after warm-up.",
        "",
    ]
    lines += [
        "## LBP layer vs scikit-image loop (1,024 faces, 48x48, P=8, R=1)",
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
        lines += [
            "",
            f"## Training step at {size}x{size}, batch {m['batch']}",
            "",
            "| network | ms/step (min-max) | ratio to vgg16 | parameters |",
            "|---|---|---|---|",
        ]
        for name, r in row.items():
            if name == "lbp_share_of_full_step":
                continue
            if "error" in r:
                lines.append(f"| {name} | - | - | {r['error']} |")
                continue
            lines.append(
                f"| {name} | {r['ms_per_step']:.0f} ({r['ms_min']:.0f}-{r['ms_max']:.0f}) | "
                f"{r['ratio_vs_vgg16']:.2f} | {r['params']:,} |"
            )
        ratio = row["full"]["ratio_vs_vgg16"]
        lines.append("")
        lines.append(
            f"Full vs vgg16: {ratio:.2f}x (target <= 2.5x: {'met' if ratio <= 2.5 else 'MISSED'}); "
            f"LBP layer = {100 * row['lbp_share_of_full_step']:.2f}% of a full step (target < 1%: "
            f"{'met' if row['lbp_share_of_full_step'] < 0.01 else 'MISSED'})."
        )
    d = results["data"]
    lines += [
        "",
        "## Data pipeline",
        "",
        f"Loader (decoded arrays, training augmentation, {d['workers']} workers): {d['loader_faces_per_s']:,.0f} faces/s; "
        f"full-model training: {d['train_faces_per_s']:,.0f} faces/s; ratio {d['ratio_loader_vs_train']:.1f}x "
        f"(target >= 10x: {'met' if d['ratio_loader_vs_train'] >= 10 else 'MISSED'}).",
    ]
    i = results["inference"]
    lines += [
        "",
        "## Inference (full model, 48x48)",
        "",
        "| | ms/face, batch 1 | faces/s, batch 64 |",
        "|---|---|---|",
    ]
    for name in ("eager", "torchscript"):
        lines.append(
            f"| {name} | {i[name]['ms_per_face_batch1']:.2f} | {i[name]['faces_per_s_batch64']:,.0f} |"
        )
    lines.append("")
    lines.append(
        f"TorchScript vs eager: {i['ratio_export_vs_eager']:.2f}x at batch 64, {i['ratio_export_vs_eager_batch1']:.2f}x "
        f"at batch 1 (target >= 1.3x: {'met' if i['ratio_export_vs_eager'] >= 1.3 else 'MISSED'})."
    )
    lines += [
        "",
        f"Peak memory (process RSS) after a full-model training step: {results['peak_memory_mb']:.0f} MB.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--width", type=float, default=0.25, help="VGG16 channel multiplier (1.0 = the paper's)"
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--sizes", default="48,96")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=min(2, torch.get_num_threads()))
    parser.add_argument("--out", default="logs/bench")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit deprecation notices
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    torch.manual_seed(0)

    synthetic = render_synthetic_faces(num_subjects=40, frames_per_sequence=4, image_size=48)
    faces = synthetic.images[:1024]
    results = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "machine": f"{cpu_name()}, {platform.system()}",
            "torch": torch.__version__,
            "threads": args.threads,
            "width": args.width,
            "batch": args.batch,
            "repeats": args.repeats,
        },
        "lbp": bench_lbp(faces, args.repeats),
    }
    results["train_step"] = bench_train_steps(
        [int(s) for s in args.sizes.split(",")], args.batch, args.width, args.repeats
    )
    results["data"] = bench_data(
        synthetic.images,
        synthetic.labels,
        args.batch,
        args.workers,
        results["train_step"]["48"]["full"]["ms_per_step"],
        max(2, args.repeats // 2),
    )
    results["inference"] = bench_inference(48, args.width, args.repeats)
    results["peak_memory_mb"] = peak_memory_mb(48, args.batch, args.width)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=2))
    table = markdown(results)
    (out / "bench.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()

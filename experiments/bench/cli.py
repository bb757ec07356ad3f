"""`python -m experiments.bench` (`make bench`): the options, the order of the sections, and the files
written (logs/bench/bench.json and bench.md; the table is printed too)."""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
import time
import warnings

import torch

from fer_attention.data.synthetic import render_synthetic_faces
from fer_attention.runtime import cpu_description, tune_malloc

from . import __doc__ as DESCRIPTION
from . import config, measure, render
from .measure_inference import bench_inference, bench_int8, bench_video

QUICK = dict(width=0.125, batch=8, sizes="48", repeats=1, compile_sizes="none", subjects=4, lbp_faces=64)
FULL = dict(width=0.25, batch=64, sizes="48,96", repeats=5, compile_sizes="48", subjects=40, lbp_faces=1024)
# the attainable-rate section: matmul sizes, and the widths and batch of its training steps (at the first
# of --sizes); batch 32 is the target's (conf/budget/cpu.yaml)
QUICK.update(matmul_sizes="512,1024", rate_widths="0.25", rate_batch=8)
FULL.update(matmul_sizes="1024,2048,4096", rate_widths="0.25,0.5,1.0", rate_batch=32)
RATE_KEYS = ("matmul_sizes", "rate_widths", "rate_batch")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench", description=DESCRIPTION)
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
    parser.add_argument(
        "--matmul-sizes",
        default=None,
        help="square matmul sizes of the attainable rate (default 1024,2048,4096)",
    )
    parser.add_argument(
        "--rate-widths", default=None, help="widths of the FLOP-counted training steps (default 0.25,0.5,1.0)"
    )
    parser.add_argument("--rate-batch", type=int, default=None, help="their batch (default 32)")
    parser.add_argument(
        "--emulated",
        action="store_true",
        help="also time bf16 where this CPU only emulates it (no AVX-512 BF16 or AMX): about 1 GFLOP/s, "
        "85 min on an AVX2 EPYC; skipped by default",
    )
    parser.add_argument("--out", default="logs/bench")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="toy sizes (width 0.125, batch 8, 48x48, 1 repeat, 1 thread, no torch.compile; matmul 512 and "
        "1024, FLOP-counted steps at width 0.25 only) to check the script in seconds; explicit options "
        "still apply",
    )
    args = parser.parse_args(argv)
    defaults = dict(QUICK if args.quick else FULL)
    defaults["threads"] = 1 if args.quick else min(2, torch.get_num_threads())
    for key in ("width", "batch", "sizes", "repeats", "compile_sizes", "threads", *RATE_KEYS):
        if getattr(args, key) is None:
            setattr(args, key, defaults[key])
    args.subjects, args.lbp_faces = defaults["subjects"], defaults["lbp_faces"]
    return args


def run(args: argparse.Namespace) -> dict:
    """Every section in order; the results dict that bench.json holds."""
    sizes = [int(s) for s in args.sizes.split(",")]
    compile_sizes = [] if args.compile_sizes == "none" else [int(s) for s in args.compile_sizes.split(",")]
    torch.set_num_threads(args.threads)
    # as fer-train does at start (conf/runtime/default.yaml `malloc`); the allocator section compares both settings
    malloc = config.configured_malloc()
    malloc_applied = tune_malloc(**malloc)
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit deprecation notices
    warnings.filterwarnings("ignore", category=UserWarning)  # tracer, ONNX exporter and Dynamo notes
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    torch.manual_seed(0)

    synthetic = render_synthetic_faces(num_subjects=args.subjects, frames_per_sequence=4, image_size=48)
    faces = synthetic.images[: args.lbp_faces]
    augment = config.train_augmentation()
    ort_version = None
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime

        ort_version = onnxruntime.__version__
    results: dict = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "machine": f"{cpu_description()}, {platform.system()}",
            "torch": torch.__version__,
            "onnxruntime": ort_version,
            "threads": args.threads,
            "width": args.width,
            "batch": args.batch,
            "repeats": args.repeats,
            "lbp_faces": len(faces),
            "quick": args.quick,
            "malloc": {**malloc, "applied": malloc_applied},
            "skipped_emulated": measure.skipped_emulated(args.emulated),
        },
    }
    start = time.perf_counter()

    def done(section: str) -> None:
        print(f"[bench] {section}: done at {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)

    results["lbp"] = measure.bench_lbp(faces, args.repeats)
    done("LBP layer")
    results["train_step"] = measure.bench_train_steps(
        sizes, args.batch, args.width, args.repeats, config.ablations()
    )
    done("training step per ablation")
    fast = measure.bench_fast_paths(
        sizes, args.batch, args.width, args.repeats, results["train_step"], compile_sizes, args.emulated
    )
    fast["config"] = config.configured_defaults()
    fast["allocator"] = measure.bench_allocator(sizes, args.batch, args.width, args.threads, args.repeats)
    results["fast_paths"] = fast
    done("fast paths")
    results["rate"] = measure.bench_rate(
        [int(n) for n in args.matmul_sizes.split(",")],
        [float(w) for w in args.rate_widths.split(",")],
        sizes[0],
        args.rate_batch,
        args.repeats,
        emulated=args.emulated,
    )
    done("attainable rate")
    results["data"] = measure.bench_data(
        synthetic.images,
        synthetic.labels,
        args.batch,
        args.workers,
        results["train_step"][str(sizes[0])]["full"]["ms_per_step"],
        max(2, args.repeats // 2),
        augment,
    )
    fast["loader_workers"] = measure.bench_loader_workers(
        synthetic.images,
        synthetic.labels,
        args.batch,
        args.loader_workers,
        3,
        max(1, args.repeats // 2),
        augment,
        warmup=0 if args.quick else 1,
    )
    done("data loader")
    channels_last = fast["config"]["channels_last"]
    results["inference"] = bench_inference(48, args.width, args.repeats, args.threads, channels_last)
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
        channels_last=channels_last,
    )
    done("video")
    results["peak_memory_mb"] = measure.peak_memory_mb(
        48, args.batch, args.width, args.threads, fresh_process=not args.quick
    )
    results["meta"]["seconds"] = time.perf_counter() - start
    return results


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results = run(args)
    print(render.write(results, args.out))

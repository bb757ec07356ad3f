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
from . import config, measure, measure_data, render
from .measure_inference import bench_inference, bench_int8, bench_video

# option: (type, default, --quick's default, help). max_run_time: seconds a figure is timed for at most
# (measure.timeit); --quick's stops after one timed run. The attainable-rate section: matmul sizes, and the
# widths and batch of its training steps (at the first of --sizes); batch 32 is the target's
# (conf/budget/cpu.yaml).
OPTIONS = {
    "width": (float, 0.25, 0.125, "VGG16 channel multiplier (1.0 = the paper's)"),
    "batch": (int, 64, 8, "training-step batch"),
    "sizes": (str, "48,96", "48", "training-step image sizes"),
    "max_run_time": (
        float,
        measure.MAX_RUN_TIME,
        1e-3,
        "seconds each figure is timed for at most: torch.utils.benchmark's timed runs stop once their IQR "
        f"is under {measure.IQR_THRESHOLD:g} of the median (after 4 runs) or then",
    ),
    "compile_sizes": (
        str,
        "48",
        "none",
        "sizes at which to time torch.compile (minutes on 2 cores); none skips",
    ),
    "matmul_sizes": (str, "1024,2048,4096", "512,1024", "square matmul sizes of the attainable rate"),
    "rate_widths": (str, "0.25,0.5,1.0", "0.25", "widths of the FLOP-counted training steps"),
    "rate_batch": (int, 32, 8, "their batch"),
    "subjects": (int, 40, 4, "synthetic subjects: the loader's faces; LBP and int8 take the first lbp_faces"),
    "lbp_faces": (int, 1024, 64, "faces of the LBP and int8 sections"),
    "threads": (int, min(2, torch.get_num_threads()), 1, "torch threads"),
    "workers": (int, 0, 0, "loader workers of the loader-vs-training ratio"),
    "loader_workers": (int, 2, 2, "workers of the persistent_workers on/off comparison"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options; those not given take their OPTIONS default (--quick's with ``--quick``)."""
    parser = argparse.ArgumentParser(prog="python -m experiments.bench", description=DESCRIPTION)
    for key, (kind, full, quick, what) in OPTIONS.items():
        shown = f"default {full}" + (f"; --quick: {quick}" if quick != full else "")
        parser.add_argument(f"--{key.replace('_', '-')}", type=kind, default=None, help=f"{what} ({shown})")
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
        help="every option at its --quick default: toy sizes to check the script in seconds; explicit "
        "options still apply",
    )
    args = parser.parse_args(argv)
    for key, (_, full, quick, _) in OPTIONS.items():
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
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
            "max_run_time": args.max_run_time,
            "iqr_threshold": measure.IQR_THRESHOLD,
            "lbp_faces": len(faces),
            "quick": args.quick,
            "malloc": {**malloc, "applied": malloc_applied},
            "skipped_emulated": measure.skipped_emulated(args.emulated),
        },
    }
    start = time.perf_counter()

    def done(section: str) -> None:
        print(f"[bench] {section}: done at {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)

    results["lbp"] = measure.bench_lbp(faces, args.max_run_time)
    done("LBP layer")
    results["train_step"] = measure.bench_train_steps(
        sizes, args.batch, args.width, args.max_run_time, config.ablations()
    )
    done("training step per ablation")
    fast = measure.bench_fast_paths(
        sizes, args.batch, args.width, args.max_run_time, results["train_step"], compile_sizes, args.emulated
    )
    fast["config"] = config.configured_defaults()
    fast["allocator"] = measure.bench_allocator(
        sizes, args.batch, args.width, args.threads, args.max_run_time
    )
    results["fast_paths"] = fast
    done("fast paths")
    results["rate"] = measure.bench_rate(
        [int(n) for n in args.matmul_sizes.split(",")],
        [float(w) for w in args.rate_widths.split(",")],
        sizes[0],
        args.rate_batch,
        args.max_run_time,
        emulated=args.emulated,
    )
    done("attainable rate")
    images, labels, full_ms = synthetic.images, synthetic.labels, results["train_step"][str(sizes[0])]["full"]
    results["data"] = measure_data.bench_data(
        images, labels, args.batch, args.workers, full_ms["ms_per_step"], args.max_run_time, augment
    )
    fast["loader_workers"] = measure_data.bench_loader_workers(
        images, labels, args.batch, args.loader_workers, 3, args.max_run_time, augment
    )
    done("data loader")
    channels_last = fast["config"]["channels_last"]
    results["inference"] = bench_inference(48, args.width, args.max_run_time, args.threads, channels_last)
    done("inference")
    baseline = results["inference"][results["inference"]["eager_baseline"]]
    results["int8"] = bench_int8(
        48, args.width, args.max_run_time, args.threads, baseline, faces, calib=32 if args.quick else 128
    )
    done("int8")
    frames = 10 if args.quick else 150
    results["video"] = bench_video(args.width, frames, args.max_run_time, channels_last)
    done("video")
    results["peak_memory_mb"] = measure.peak_memory_mb(
        48, args.batch, args.width, args.threads, fresh_process=not args.quick
    )
    results["meta"]["seconds"] = time.perf_counter() - start
    return results


def main(argv: list[str] | None = None) -> None:
    """Run every section, write bench.json and bench.md, print the Markdown."""
    args = parse_args(argv)
    results = run(args)
    print(render.write(results, args.out))

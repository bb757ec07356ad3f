"""Timing the training side: the LBP layer against scikit-image, the training step of every ablation, the
fast paths (channels_last, bf16 autocast, torch.compile, malloc thresholds), the attainable rate (matmul)
and the training step's FLOP against it, and peak memory. Each figure is timed by
``torch.utils.benchmark.Timer`` (:func:`timeit`); the ratios between figures come from decide.py."""

from __future__ import annotations

import json
import multiprocessing
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from skimage.feature import local_binary_pattern as sk_lbp
from torch.utils.benchmark import Timer
from torch.utils.flop_counter import FlopCounterMode

from fer_attention.lbp import LBPLayer
from fer_attention.models import FERAttentionNet
from fer_attention.runtime import cpu_has_bf16, tune_malloc

from . import config, decide

REPO = Path(__file__).resolve().parents[2]

LBP_METHODS = ("default", "ror", "uniform", "nri_uniform", "var")
# Fast paths of the training step: memory format and autocast; "compile" is eager fp32 + torch.compile.
FAST_PATHS = {
    "fp32": dict(channels_last=False, bf16=False),
    "channels_last": dict(channels_last=True, bf16=False),
    "bf16": dict(channels_last=False, bf16=True),
    "channels_last_bf16": dict(channels_last=True, bf16=True),
}
MS_KEYS = ("ms_per_step", "ms_iqr", "ms_min", "ms_max", "kernel_ms_per_step", "page_faults_per_step")
MATMUL_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# Timer.adaptive_autorange: timed runs until their IQR is under this share of the median (after 4 runs at
# least), or until a figure's ``max_run_time`` seconds are spent (MAX_RUN_TIME unless given)
IQR_THRESHOLD = 0.1
MAX_RUN_TIME = 10.0


def timed_paths(emulated: bool = False) -> dict[str, dict[str, bool]]:
    """The FAST_PATHS to time: all of them with ``emulated``, else those of the dtypes this CPU computes
    natively. An emulated bf16 (no AVX-512 BF16 or AMX) runs at about 1 GFLOP/s and measures the
    emulation; timing it took `make bench` 85 minutes on an AVX2 EPYC."""
    native = native_dtypes()
    return {k: v for k, v in FAST_PATHS.items() if emulated or not v["bf16"] or "bf16" in native}


def skipped_emulated(emulated: bool = False) -> list[str]:
    """What :func:`timed_paths` and the matmul rate leave out on this CPU (empty where nothing is)."""
    if emulated or "bf16" in native_dtypes():
        return []
    return [k for k, v in FAST_PATHS.items() if v["bf16"]] + ["bf16 matmul"]


COMPILE_SKIPPED = (
    "not timed at this size (--compile-sizes): compiling takes about a minute per size on 2 cores"
)


def timeit(fn: Callable[[], object], max_run_time: float = MAX_RUN_TIME) -> dict[str, float]:
    """Seconds per call of ``fn``, by ``Timer.adaptive_autorange`` with this process's torch threads: after
    its warm-up, timed runs of ``calls_per_repeat`` calls each (more than one only for calls under about
    10 ms) until IQR_THRESHOLD or ``max_run_time`` stops them; their median, IQR, min, max and number
    (``repeats``), with the kernel time (``kernel_s``, all threads) and minor page faults per timed call,
    which show allocator costs."""
    usage = {"kernel_s": 0.0, "page_faults": 0.0}

    def mark() -> None:  # Timer's setup: run before each timed run, outside its timing
        usage["start"] = resource.getrusage(resource.RUSAGE_SELF)

    def count(_calls: int, _seconds: float) -> None:  # after each timed run, not after the warm-up
        now, start = resource.getrusage(resource.RUSAGE_SELF), usage["start"]
        usage["kernel_s"] += now.ru_stime - start.ru_stime
        usage["page_faults"] += now.ru_minflt - start.ru_minflt

    timer = Timer("fn()", "mark()", globals={"fn": fn, "mark": mark}, num_threads=torch.get_num_threads())
    m = timer.adaptive_autorange(IQR_THRESHOLD, max_run_time=max_run_time, callback=count)
    calls = m.number_per_run * len(m.times)
    return {
        "median": m.median,
        "iqr": m.iqr,
        "min": min(m.times),
        "max": max(m.times),
        "repeats": len(m.times),
        "calls_per_repeat": m.number_per_run,
        "kernel_s": usage["kernel_s"] / calls,
        "page_faults": usage["page_faults"] / calls,
    }


def ms(t: dict[str, float]) -> dict[str, float]:
    """A ``timeit`` result as milliseconds per training step."""
    return {
        "ms_per_step": 1000 * t["median"],
        "ms_iqr": 1000 * t["iqr"],
        "ms_min": 1000 * t["min"],
        "ms_max": 1000 * t["max"],
        "kernel_ms_per_step": 1000 * t["kernel_s"],
        "page_faults_per_step": t["page_faults"],
    }


def native_dtypes() -> list[str]:
    """The dtypes this CPU computes natively: fp32, and bf16 where it has AVX-512 BF16 or AMX."""
    return ["fp32", "bf16"] if cpu_has_bf16() else ["fp32"]


def build(ablation: str, size: int, width: float) -> FERAttentionNet:
    """The network of `fer-train ablation=<ablation>` (``model.net`` composed from conf/) at ``size`` x
    ``size`` and VGG16 width ``width``."""
    net = config.net_config(ablation, size, width)
    return FERAttentionNet(**{key: value for key, value in net.items() if key != "_target_"})


def train_step_fn(
    net: torch.nn.Module,
    batch: int,
    size: int,
    channels_last: bool = False,
    bf16: bool = False,
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
    adamw: dict | None = None,
) -> Callable[[], torch.Tensor]:
    """One AdamW training step on a fixed random batch, as FERModule runs it with ``model.channels_last``
    (NHWC weights and batch) and ``trainer.precision=bf16-mixed`` (the forward under bf16 autocast),
    returning its loss; ``prepare`` is applied to the batch once (e.g. ``mark_batch_dynamic`` under
    compile); ``adamw``: more AdamW arguments (``foreach``, ``fused``)."""
    x = torch.rand(batch, 1, size, size)
    y = torch.randint(0, 7, (batch,))
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if prepare is not None:
        x = prepare(x)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, **(adamw or {}))
    net.train()

    def step() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss.detach()

    return step


def time_steps(size: int, batch: int, width: float, max_run_time: float, **path: bool) -> dict:
    """The timed training step (``ms``) of the full model and of vgg16 on the fast path ``path``
    (``channels_last``, ``bf16``)."""
    return {
        model: ms(timeit(train_step_fn(build(model, size, width), batch, size, **path), max_run_time))
        for model in ("full", "vgg16")
    }


def in_fresh_process(fn: Callable, *args: object) -> object:
    """``fn(*args)`` in a fresh (spawned) Python process."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def bench_lbp(faces: np.ndarray, max_run_time: float) -> dict:
    """Faces/s of the LBP layer and of scikit-image's loop over ``faces``, per method of LBP_METHODS."""
    out = {}
    x = torch.from_numpy(faces).float().div(255).unsqueeze(1)
    for method in LBP_METHODS:
        layer = LBPLayer(method, 8, 1.0)
        t_torch = timeit(lambda layer=layer: layer(x), max_run_time)
        t_sk = timeit(lambda m=method: [sk_lbp(im, 8, 1.0, m) for im in faces], max_run_time)
        out[method] = {
            "torch_faces_per_s": len(faces) / t_torch["median"],
            "skimage_faces_per_s": len(faces) / t_sk["median"],
            "speedup": t_sk["median"] / t_torch["median"],
            "torch_s": t_torch,
            "skimage_s": t_sk,
        }
    return out


def bench_train_steps(
    sizes: list[int], batch: int, width: float, max_run_time: float, ablations: Iterable[str]
) -> dict:
    """The training step of every option in ``ablations`` (the `ablation` group of conf/), with its ratio
    to vgg16, and the LBP layer's share of the full model's step."""
    out: dict = {}
    for size in sizes:
        row = {}
        for name in ablations:
            try:
                net = build(name, size, width)
            except ValueError as err:
                row[name] = {"error": str(err)}
                continue
            t = timeit(train_step_fn(net, batch, size), max_run_time)
            row[name] = {**ms(t), "params": sum(p.numel() for p in net.parameters())}
        decide.add_ratios_vs_vgg16(row)
        lbp = config.net_config("full", size, width)["lbp"]  # the full model's LBP layer alone
        layer, x = LBPLayer(lbp["method"], lbp["P"], lbp["R"]), torch.rand(batch, 1, size, size)
        lbp_ms = 1000 * timeit(lambda layer=layer, x=x: layer(x), max_run_time)["median"]
        row["lbp_share_of_full_step"] = lbp_ms / row["full"]["ms_per_step"]
        out[str(size)] = row
    out["ratio_full_vs_vgg16"] = {size: row["full"]["ratio_vs_vgg16"] for size, row in out.items()}
    return out


def bench_compile(size: int, batch: int, width: float, max_run_time: float, path: str = "fp32") -> dict:
    """Full model, ``model.compile=true`` over the fast path ``path`` (the one fer-train runs on this
    CPU): ``compile_probe`` in two fresh processes on one empty Inductor cache, the first job of a sweep
    (``compile_s``: its first step, compilation included) and a later one (``compile_warm_s``: the graphs
    loaded from the cache); the steady step and the graphs compiled for a short batch and for validation
    are the first job's."""
    opts = FAST_PATHS[path]
    flags = [*(["--channels-last"] if opts["channels_last"] else []), *(["--bf16"] if opts["bf16"] else [])]
    with tempfile.TemporaryDirectory() as cache:
        runs = []
        for _ in ("cold", "warm"):
            command = [sys.executable, "-m", "experiments.bench.compile_probe", "--cache", cache, *flags]
            command += [f"--size={size}", f"--batch={batch}", f"--width={width}"]
            command += [f"--max-run-time={max_run_time}", f"--threads={torch.get_num_threads()}"]
            done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    cold, warm = runs
    return {
        "over": path,
        "full": cold["full"],
        "compile_s": cold["first_step_s"],
        "compile_warm_s": warm["first_step_s"],
        "recompiles": {
            "short_batch": cold["graphs_after_short_batch"] - cold["graphs_first_step"],
            "validation": cold["graphs_total"] - cold["graphs_after_short_batch"],
        },
        "probe": {"cold": cold, "warm": warm},
    }


def bench_fast_paths(
    sizes: list[int],
    batch: int,
    width: float,
    max_run_time: float,
    train_step: dict,
    compile_sizes: list[int],
    emulated: bool = False,
) -> dict:
    """Training step of the full model and of vgg16 under each fast path; ``fp32`` is the plain eager step
    of the ``train_step`` section (same run). Speedups are of the full model against ``fp32``; compile is
    timed over the path fer-train runs at budget=cpu on this CPU (channels_last, + bf16 where native)."""
    compiled_path = decide.rate_target_path(native_dtypes())
    out: dict = {"train_step": {}}
    for size in sizes:
        base = train_step[str(size)]
        row: dict = {
            "fp32": {
                "full": {k: v for k, v in base["full"].items() if k in MS_KEYS},
                "vgg16": {k: v for k, v in base["vgg16"].items() if k in MS_KEYS},
            }
        }
        for name, opts in timed_paths(emulated).items():
            if name == "fp32":
                continue
            row[name] = time_steps(size, batch, width, max_run_time, **opts)
        if size in compile_sizes:
            row["compile"] = bench_compile(size, batch, width, max_run_time, compiled_path)
        else:
            row["compile"] = {"skipped": COMPILE_SKIPPED}
        out["train_step"][str(size)] = decide.add_fast_path_speedups(row)
    out["defaults"] = decide.fast_path_defaults(out["train_step"])
    return out


def count_flops(fn: Callable[[], object]) -> int:
    """FLOP of one call of ``fn`` (``torch.utils.flop_counter.FlopCounterMode``: the matmuls and
    convolutions of the forward and, where ``fn`` calls it, the backward; elementwise ops, reductions and
    the optimizer's update count nothing)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def bench_matmul(sizes: list[int], max_run_time: float, emulated: bool = False) -> dict:
    """``torch.matmul`` of two random ``n`` x ``n`` matrices per dtype (MATMUL_DTYPES; an emulated one only
    with ``emulated``) and size, with the torch threads as set: dtype -> size -> GFLOP (2 n^3), seconds,
    GFLOP/s of the median."""
    out: dict = {}
    native = native_dtypes()
    for name, dtype in MATMUL_DTYPES.items():
        if not emulated and name not in native:
            continue
        out[name] = {}
        for n in sizes:
            a, b = torch.rand(n, n).to(dtype), torch.rand(n, n).to(dtype)
            t = timeit(lambda a=a, b=b: torch.matmul(a, b), max_run_time)
            gflop = decide.matmul_gflop(n)
            out[name][str(n)] = {
                "gflop": gflop,
                "s": t,
                "gflop_per_s": decide.gflop_per_s(gflop, t["median"]),
            }
    return out


def bench_rate(
    matmul_sizes: list[int],
    widths: list[float],
    size: int,
    batch: int,
    max_run_time: float,
    models: Iterable[str] = ("full", "vgg16"),
    emulated: bool = False,
) -> dict:
    """The attainable rate (the best ``bench_matmul`` size per dtype) and, for the full model and vgg16 at
    each width under each fast path of FAST_PATHS (the training step of ``bench_fast_paths``), the step's
    FLOP (``count_flops`` of one step, forward + backward, before the timing), its time,
    GFLOP/s and share of the matmul rate of its dtype (bf16 autocast against bf16, else fp32; bf16 against
    fp32 where this CPU only emulates bf16)."""
    matmul = bench_matmul(matmul_sizes, max_run_time, emulated)
    attainable = decide.attainable_rate(matmul)
    native = native_dtypes()
    steps = []
    for width in widths:
        for model in models:
            for path, opts in timed_paths(emulated).items():
                step = train_step_fn(build(model, size, width), batch, size, **opts)
                gflop = count_flops(step) / 1e9
                steps.append(
                    {
                        "model": model,
                        "width": width,
                        "path": path,
                        "dtype": "bf16" if opts["bf16"] else "fp32",
                        "gflop": gflop,
                        **ms(timeit(step, max_run_time)),
                    }
                )
    return {
        "matmul": matmul,
        "attainable": attainable,
        "size": size,
        "batch": batch,
        "native": native,
        "steps": decide.add_step_rates(steps, attainable, native),
        "target": decide.rate_target(steps, batch, decide.rate_target_path(native)),
    }


def _allocator_child(
    tuned: bool, sizes: list[int], batch: int, width: float, threads: int, max_run_time: float
) -> dict:
    torch.set_num_threads(threads)
    applied = tune_malloc(**config.configured_malloc()) if tuned else False
    out: dict = {"applied": applied}
    for size in sizes:
        out[str(size)] = time_steps(size, batch, width, max_run_time, channels_last=True)
    return out


def bench_allocator(sizes: list[int], batch: int, width: float, threads: int, max_run_time: float) -> dict:
    """Training step (channels_last, as configured) of the full model and vgg16 in two fresh processes:
    glibc's default malloc thresholds vs the ``malloc`` thresholds of conf/train.yaml. Fresh processes
    because the thresholds cannot be unset, and because the allocator's state depends on what ran before."""
    out: dict = {"thresholds": config.configured_malloc()}
    for mode, tuned in (("glibc_default", False), ("tuned", True)):
        out[mode] = in_fresh_process(_allocator_child, tuned, sizes, batch, width, threads, max_run_time)
    out.update(decide.allocator_ratios(out["glibc_default"], out["tuned"]))
    return out


def _peak_memory_child(size: int, batch: int, width: float, threads: int) -> float:
    torch.set_num_threads(threads)
    tune_malloc(**config.configured_malloc())
    step = train_step_fn(build("full", size, width), batch, size)
    step()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_memory_mb(size: int, batch: int, width: float, threads: int, fresh_process: bool = True) -> float:
    """Peak resident memory (MB, ru_maxrss) of a fresh process after one full-model fp32 training step,
    so that the larger sizes and fast paths benchmarked before do not count (``fresh_process=False``:
    this process's peak so far)."""
    if not fresh_process:
        return _peak_memory_child(size, batch, width, threads)
    return in_fresh_process(_peak_memory_child, size, batch, width, threads)

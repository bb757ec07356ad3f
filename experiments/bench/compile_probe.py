"""One fresh process's view of `model.compile=true`, as a job of a sweep sees it: the full model compiled
in place with its Inductor cache in ``--cache`` (``compile_in_place``) and the batch dimension marked
dynamic (``mark_batch_dynamic``), then timed: the first training step (compilation, or loading the
cached graphs), the steady step, a short last batch, and validation (eval mode, another batch size).
Prints one JSON line. `make bench` runs it twice on one empty cache folder: the first job of a sweep
(cold) and every later one (warm). The malloc thresholds are conf/runtime/default.yaml's, as in fer-train.

    python -m experiments.bench.compile_probe --cache DIR [--size 48] [--batch 64] [--width 0.25]
        [--max-run-time 10] [--threads 2] [--channels-last] [--bf16]

The first calls are timed once each by hand (a repeat would find the graphs compiled); the steady step by
``measure.timeit``.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from fer_attention.runtime import tune_malloc
from fer_attention.training.module import compile_in_place, mark_batch_dynamic

from . import config
from .measure import MAX_RUN_TIME, build, ms, timeit, train_step_fn


def compiled_graphs() -> int:
    """Graphs Dynamo has compiled in this process so far."""
    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])


def seconds(fn) -> float:
    """Wall seconds of one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def probe(
    size: int, batch: int, width: float, max_run_time: float, cache: str, channels_last: bool, bf16: bool
) -> dict:
    """The timings and graph counts of one process (see the module docstring)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = build("full", size, width).to(memory_format=fmt)
    compile_in_place(net, cache)

    def faces(n: int) -> torch.Tensor:
        return mark_batch_dynamic(torch.rand(n, 1, size, size).contiguous(memory_format=fmt))

    def train_step(n: int):
        return train_step_fn(net, n, size, channels_last, bf16, prepare=mark_batch_dynamic)

    def evaluate(n: int):
        x = faces(n)

        def run() -> None:
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                net(x)

        return run

    net.train()
    step = train_step(batch)
    first_s = seconds(step)
    graphs_first = compiled_graphs()
    steady = ms(timeit(step, max_run_time))
    short_s = seconds(train_step(max(2, batch // 3)))  # a last short batch of an epoch
    graphs_short = compiled_graphs()
    net.eval()
    eval_first_s = seconds(evaluate(batch))
    eval_other_s = seconds(evaluate(max(2, batch // 2 + 1)))
    return {
        "first_step_s": first_s,
        "full": steady,
        "short_batch_s": short_s,
        "eval_first_s": eval_first_s,
        "eval_other_batch_s": eval_other_s,
        "graphs_first_step": graphs_first,
        "graphs_after_short_batch": graphs_short,
        "graphs_total": compiled_graphs(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", required=True, help="Inductor cache folder (model.compile_cache_dir)")
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--max-run-time", type=float, default=MAX_RUN_TIME)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--bf16", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    tune_malloc(**config.configured_malloc())  # as fer-train does at start
    torch.manual_seed(0)
    result = probe(
        args.size, args.batch, args.width, args.max_run_time, args.cache, args.channels_last, args.bf16
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()

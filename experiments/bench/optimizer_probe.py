"""The optimizer's share of a training step, three ways: AdamW as fer-train builds it on a CPU today (a
Python loop over the parameter tensors: torch's CPU default), ``foreach=True`` (one multi-tensor kernel per
operation) and ``fused=True`` (one fused kernel). The step is `budget=cpu`'s: the full model, channels_last,
bf16 autocast. The variants are timed in turn, round after round, in one process, so that they share the
machine's state (each round times each variant with ``measure.timeit``); each starts from the same
weights and batch, and the losses after ``--check-steps`` steps show whether they train the same network.

    python -m experiments.bench.optimizer_probe --out DIR [--width 0.25] [--batch 32] [--size 48]
        [--rounds 5] [--max-run-time 10] [--threads 2]

Writes DIR/results.json and DIR/README.md; the override that selects a variant in fer-train is listed
beside it (`+model.optimizer.foreach=true`, `+model.optimizer.fused=true`).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
from pathlib import Path

import torch

from fer_attention.reporting.results import kept_notes
from fer_attention.runtime import cpu_description, tune_malloc

from . import config
from .measure import MAX_RUN_TIME, build, timeit, train_step_fn

VARIANTS = {
    "loop (default)": ({}, ""),
    "foreach": ({"foreach": True}, "+model.optimizer.foreach=true"),
    "fused": ({"fused": True}, "+model.optimizer.fused=true"),
}


def losses(net: torch.nn.Module, adamw: dict, batch: int, size: int, steps: int) -> list[float]:
    """The training losses of ``steps`` AdamW steps (channels_last, bf16 autocast) from ``net``'s weights on
    one fixed batch."""
    torch.manual_seed(1)
    step = train_step_fn(copy.deepcopy(net), batch, size, channels_last=True, bf16=True, adamw=adamw)
    return [float(step()) for _ in range(steps)]


def probe(width: float, batch: int, size: int, rounds: int, max_run_time: float, check_steps: int) -> dict:
    """Median ms per step of each variant over ``rounds`` interleaved rounds, the ratio to the loop, and
    the losses of ``check_steps`` steps from one set of weights."""
    torch.manual_seed(0)
    net = build("full", size, width)
    steps = {
        name: train_step_fn(copy.deepcopy(net), batch, size, channels_last=True, bf16=True, adamw=kw)
        for name, (kw, _) in VARIANTS.items()
    }
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(rounds):
        for name, step in steps.items():
            times[name].append(timeit(step, max_run_time)["median"] * 1e3)
    base = statistics.median(times["loop (default)"])
    rows = {}
    for name, (kw, override) in VARIANTS.items():
        median = statistics.median(times[name])
        rows[name] = {
            "ms_per_step": median,
            "ms_per_round": times[name],
            "speedup_vs_loop": base / median,
            "override": override,
            "losses": losses(net, kw, batch, size, check_steps),
        }
    ref = rows["loop (default)"]["losses"]
    for row in rows.values():
        row["max_loss_diff_vs_loop"] = max(abs(a - b) for a, b in zip(row["losses"], ref, strict=True))
    return rows


def markdown(result: dict) -> str:
    """The README table of one probe run."""
    m = result["meta"]
    lines = [
        f"### AdamW variants in the train step (full, width {m['width']}, batch {m['batch']}, "
        f"{m['size']}x{m['size']}, channels_last + bf16, {m['threads']} threads)",
        "",
        "| AdamW | override | ms per step (median of rounds) | speed-up vs loop | max loss difference vs loop "
        f"over {m['check_steps']} steps |",
        "|---|---|---|---|---|",
    ]
    for name, row in result["variants"].items():
        lines.append(
            f"| {name} | {'`' + row['override'] + '`' if row['override'] else '(none)'} | "
            f"{row['ms_per_step']:.1f} | {row['speedup_vs_loop']:.3f}x | {row['max_loss_diff_vs_loop']:.2e} |"
        )
    lines += [
        "",
        f"Machine: {m['machine']}; torch {m['torch']}; {m['rounds']} rounds, variants in turn within a round, "
        f"each timed by torch.utils.benchmark for up to {m['max_run_time']:g} s a round.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench.optimizer_probe", description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--max-run-time", type=float, default=MAX_RUN_TIME, help="seconds per variant a round"
    )
    parser.add_argument("--check-steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    tune_malloc(**config.configured_malloc())  # as fer-train does at start
    variants = probe(args.width, args.batch, args.size, args.rounds, args.max_run_time, args.check_steps)
    meta = {
        k: getattr(args, k)
        for k in ("width", "batch", "size", "rounds", "max_run_time", "check_steps", "threads")
    }
    result = {
        "meta": {**meta, "machine": cpu_description(), "torch": torch.__version__},
        "variants": variants,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    notes = kept_notes(out / "README.md")
    (out / "README.md").write_text(table + ("\n" + notes if notes else ""))
    print(table)


if __name__ == "__main__":
    main()

"""`make profile`: where a training step's time goes. ``torch.profiler`` over a few steps of the full
model (and vgg16) as ``make bench`` times them (the network of `fer-train`, AdamW, fixed random batch),
the operators ranked by self CPU time per step, and the same time grouped into kinds of work
(convolution, batch norm, elementwise, layout and dtype copies, optimiser, LBP layer, ...).

    python -m experiments.bench.profile --out logs/bench/profile [--precision bf16] [--width 0.25]

Writes ``profile.md`` and ``profile.json`` under ``--out``."""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from fer_attention.runtime import cpu_description, cpu_has_bf16, tune_malloc

from . import config
from .measure import build, train_step_fn

# kinds of work, first matching pattern wins (aten operator names)
KINDS = (
    ("convolution", r"conv|mkldnn_convolution|_convolution"),
    ("batch norm", r"batch_norm|native_batch_norm"),
    ("matmul / linear", r"addmm|\bmm\b|matmul|linear"),
    ("layout and dtype copies", r"copy_|_to_copy|\bto\b|contiguous|clone|_reshape_alias|as_strided"),
    ("optimiser", r"_foreach|adamw|_fused|lerp|addcmul|addcdiv|sqrt"),
    ("pooling", r"pool"),
    ("elementwise", r"relu|threshold|sigmoid|mul|add|sub|div|where|clamp|fill_|zero_|exp|neg|pow|sum|mean"),
)
ALLOC = r"empty|resize_|set_|view|reshape|permute|transpose|expand|select|slice|unsqueeze|squeeze|t\b"


def kind_of(name: str) -> str:
    """The kind of work an aten operator does (KINDS), "allocation and views" or "other"."""
    bare = name.removeprefix("aten::")
    for kind, pattern in KINDS:
        if re.search(pattern, bare, re.IGNORECASE):
            return kind
    if re.search(ALLOC, bare):
        return "allocation and views"
    return "other"


def profile_step(ablation: str, width: float, batch: int, size: int, bf16: bool, steps: int) -> dict:
    """Self CPU time per step of every operator over ``steps`` profiled training steps (after 3 warm-up
    steps), the LBP layer's share from its ``record_function`` scope, and the wall ms per step."""
    net = build(ablation, size, width)
    step = train_step_fn(net, batch, size, channels_last=True, bf16=bf16)
    lbp = getattr(net, "lbp", None)
    if lbp is not None:
        forward = lbp.forward

        def scoped(*args, **kwargs):
            with record_function("fer::lbp_layer"):
                return forward(*args, **kwargs)

        lbp.forward = scoped
    for _ in range(3):
        step()
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    wall_ms = 1000 * (time.perf_counter() - start) / steps
    ops, lbp_ms = [], 0.0
    for event in prof.key_averages():
        self_ms = event.self_cpu_time_total / 1000 / steps
        if event.key == "fer::lbp_layer":
            lbp_ms = event.cpu_time_total / 1000 / steps
            continue
        if self_ms > 0:
            ops.append({"op": event.key, "self_ms": self_ms, "calls": event.count / steps})
    ops.sort(key=lambda op: -op["self_ms"])
    total = sum(op["self_ms"] for op in ops)
    kinds: dict[str, float] = {}
    for op in ops:
        op["share"] = op["self_ms"] / total
        kinds[kind_of(op["op"])] = kinds.get(kind_of(op["op"]), 0.0) + op["self_ms"]
    return {
        "ablation": ablation,
        "wall_ms_per_step": wall_ms,
        "profiled_ms_per_step": total,
        "lbp_layer_ms_per_step": lbp_ms,
        "kinds": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
        "ops": ops,
    }


def render(result: dict, top: int) -> str:
    """profile.md: the settings, then per network the kinds of work and the top operators."""
    s = result["settings"]
    lines = [
        f"# Training-step profile ({result['date']})",
        "",
        f"Machine: {result['machine']}; torch {result['torch']}, {s['threads']} threads; width {s['width']}, "
        f"batch {s['batch']}, {s['size']}x{s['size']}, channels_last, "
        f"{'bf16 autocast' if s['bf16'] else 'fp32'}, AdamW; {s['steps']} profiled steps after 3 warm-up "
        f"steps. Self CPU time is summed over the profiler's threads' operators, so it can differ from wall "
        f"time; the profiler itself adds overhead to small operators.",
    ]
    for net in result["networks"]:
        total = net["profiled_ms_per_step"]
        lines += [
            "",
            f"## {net['ablation']}: {net['wall_ms_per_step']:.0f} ms per step (wall, profiled), "
            f"{total:.0f} ms self CPU time; LBP layer {net['lbp_layer_ms_per_step']:.1f} ms",
            "",
            "| kind of work | ms per step | share |",
            "|---|---|---|",
        ]
        lines += [f"| {k} | {v:.1f} | {100 * v / total:.1f}% |" for k, v in net["kinds"].items()]
        lines += [
            "",
            "| operator | kind | self ms per step | share | calls per step |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| `{op['op']}` | {kind_of(op['op'])} | {op['self_ms']:.2f} | {100 * op['share']:.1f}% | "
            f"{op['calls']:g} |"
            for op in net["ops"][:top]
        ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="logs/bench/profile", help="output folder")
    parser.add_argument("--ablations", default="full,vgg16", help="comma-separated conf/ablation options")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="bf16" if cpu_has_bf16() else "fp32",
        help="default: what training uses here (bf16 where the CPU has it natively, else fp32)",
    )
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--top", type=int, default=25, help="operators listed per network")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tune_malloc(**config.configured_malloc())
    bf16 = args.precision == "bf16"
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": cpu_description(),
        "torch": torch.__version__,
        "settings": {k: getattr(args, k) for k in ("width", "batch", "size", "steps", "threads")}
        | {"bf16": bf16},
        "networks": [
            profile_step(name.strip(), args.width, args.batch, args.size, bf16, args.steps)
            for name in args.ablations.split(",")
        ],
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "profile.json").write_text(json.dumps(result, indent=1))
    (out / "profile.md").write_text(render(result, args.top))
    print(render(result, args.top))
    return result


if __name__ == "__main__":
    main()

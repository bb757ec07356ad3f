"""The GPU run's bench line: the training step's rate against this GPU's own bf16 matmul rate, both measured
in the same run.

- matmul: ``torch.matmul`` of two random bf16 ``n`` x ``n`` matrices (n = 8192 on a GPU), 2 n^3 FLOP per
  product, the median of ``repeats`` timed products after a warm-up;
- the training step of the sweep's networks (full, vgg16) as FERModule runs it in that sweep: batch 64 of
  48 x 48 faces, channels_last weights and batch, the forward under bf16 autocast, backward, AdamW; its FLOP
  counted by ``torch.utils.flop_counter.FlopCounterMode`` (the convolutions and matmuls of forward and
  backward), its time the median of ``steps`` steps after a warm-up, synchronised with the device;
- with ``--sweep``: each job's training rate in the sweep itself, FLOP per step x steps per epoch / the
  median of ``time/epoch_s`` (validation and the loader included, so a lower bound on the step's own rate).

    python -m experiments.gpu.bench --width 1.0 --sweep <sweep dir> --out bench.json   # prints the lines
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

MODELS = ("full", "vgg16")


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def timed(fn: Callable[[], object], repeats: int, warmup: int, dev: torch.device) -> float:
    """Median seconds per call of ``fn`` after ``warmup`` calls, synchronised with ``dev``."""
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_rate(n: int, repeats: int, dev: torch.device) -> dict:
    a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    seconds = timed(lambda: torch.matmul(a, b), repeats, 3, dev)
    return {"n": n, "seconds": seconds, "tflop_per_s": 2 * n**3 / seconds / 1e12}


def step_fn(model: str, width: float, batch: int, size: int, dev: torch.device) -> Callable[[], None]:
    """One training step of ``ablation=<model>`` at ``width`` as the sweep runs it (see the docstring)."""
    from experiments.bench.config import net_config
    from fer_attention.models import FERAttentionNet

    cfg = net_config(model, size, width)
    net = FERAttentionNet(**{k: v for k, v in cfg.items() if k != "_target_"})
    net = net.to(dev, memory_format=torch.channels_last).train()
    x = torch.rand(batch, 1, size, size, device=dev).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (batch,), device=dev)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    return step


def step_rates(width: float, batch: int, size: int, steps: int, dev: torch.device) -> dict[str, dict]:
    out = {}
    for model in MODELS:
        step = step_fn(model, width, batch, size, dev)
        with FlopCounterMode(display=False) as counter:
            step()
        flop = counter.get_total_flops()
        seconds = timed(step, steps, 3, dev)
        out[model] = {"gflop_per_step": flop / 1e9, "seconds": seconds, "tflop_per_s": flop / seconds / 1e12}
    return out


def sweep_rates(sweep: Path, steps: dict[str, dict]) -> dict[str, dict]:
    """Each finished job's training rate in the sweep (see the docstring), by its ablation."""
    import yaml

    out = {}
    for job in sorted(p.parent.parent for p in sweep.glob("*/.hydra/config.yaml")):
        cfg = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
        model = next(
            (m for m in MODELS if f"ablation={m}" in (job / ".hydra" / "overrides.yaml").read_text()), None
        )
        metrics = job / "metrics.json"
        if model is None or not metrics.is_file() or model not in steps:
            continue
        with (job / "csv" / "metrics.csv").open(newline="") as fh:
            epochs = [float(r["time/epoch_s"]) for r in csv.DictReader(fh) if r.get("time/epoch_s")]
        faces = json.loads(metrics.read_text())["splits"]["train"]["faces"]
        per_epoch = math.ceil(faces / int(cfg["data"]["batch_size"]))
        limit = cfg["trainer"].get("limit_train_batches")
        if isinstance(limit, float) and limit <= 1.0:
            per_epoch = int(per_epoch * limit)
        elif isinstance(limit, int):
            per_epoch = min(per_epoch, limit)
        if not epochs or not per_epoch:
            continue
        epoch_s = statistics.median(epochs)
        flop = steps[model]["gflop_per_step"] * 1e9 * per_epoch
        out[model] = {
            "epochs": len(epochs),
            "steps_per_epoch": per_epoch,
            "epoch_s": epoch_s,
            "tflop_per_s": flop / epoch_s / 1e12,
        }
    return out


def lines(result: dict) -> list[str]:
    mm = result["matmul"]
    peak = mm["tflop_per_s"]
    head = f"{result['device']}: bf16 matmul {mm['n']}^3 {peak:.1f} TFLOP/s"
    out = []
    for model, s in result["steps"].items():
        line = (
            f"bench: {head}; {model} w{result['width']} bf16 channels_last batch {result['batch']}: "
            f"{s['gflop_per_step']:.1f} GFLOP/step, {1000 * s['seconds']:.2f} ms/step, {s['tflop_per_s']:.2f} "
            f"TFLOP/s = {100 * s['tflop_per_s'] / peak:.2f}% of the matmul rate"
        )
        t = result.get("training", {}).get(model)
        if t:
            line += (
                f"; in the sweep {t['epoch_s']:.1f} s/epoch of {t['steps_per_epoch']} steps (validation and loader "
                f"included) = {t['tflop_per_s']:.2f} TFLOP/s, {100 * t['tflop_per_s'] / peak:.2f}%"
            )
        out.append(line)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.gpu.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--matmul-n", type=int, default=None, help="8192 on a GPU, 512 on a CPU")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--steps", type=int, default=None, help="timed steps (30 on a GPU, 3 on a CPU)")
    parser.add_argument("--sweep", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    dev = device()
    gpu = dev.type == "cuda"
    result = {
        "device": torch.cuda.get_device_name(0) if gpu else "CPU",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "width": args.width,
        "batch": args.batch,
        "size": args.size,
        "matmul": matmul_rate(args.matmul_n or (8192 if gpu else 512), args.repeats, dev),
        "steps": step_rates(args.width, args.batch, args.size, args.steps or (30 if gpu else 3), dev),
    }
    if args.sweep is not None:
        result["training"] = sweep_rates(args.sweep, result["steps"])
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(lines(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

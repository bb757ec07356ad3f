"""Does 2-process DDP train the same model as one process? Both arms train the same recipe at the same
global batch (one process x B, or 2 gloo processes x B/2) for each seed, and the table gives the test
accuracy of each pair, their mean difference over seeds and each run's wall time.

    python -m experiments.ddp_parity --out experiments/results/ddp_parity_synthetic_cpu [--seeds 0,1,2]
        [--batch 32] [-- more fer-train overrides]

The default recipe is `experiment=quickstart` (the built-in synthetic faces, width 0.25, 25 epochs), a
budget at which single runs converge, in fp32 for both arms (DDP's trainer config is fp32), with no
attention-map pictures. Each run's metrics.json is copied to <out>/jobs/<arm>-seed<seed>/.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from fer_attention.reporting.results import machine

BIN = Path(sys.executable).parent
RECIPE = [
    "experiment=quickstart",
    "trainer.accelerator=cpu",
    "trainer.precision=32-true",
    "callbacks.attention_maps=null",
    "~callbacks.progress_bar",
]


def arm_overrides(arm: str, batch: int) -> list[str]:
    """fer-train overrides of one arm: ``single`` (one process, batch ``batch``) or ``ddp`` (2 processes of
    ``batch / 2``, one thread each, so both arms use the same cores)."""
    if arm == "single":
        return [f"data.batch_size={batch}"]
    if batch % 2:
        raise SystemExit(f"error: --batch {batch} must be even (2 processes share it)")
    return ["trainer=ddp", "trainer.devices=2", f"data.batch_size={batch // 2}", "threads=1"]


def run_arm(arm: str, seed: int, args) -> dict:
    """Train one arm at one seed; its metrics.json plus the command and wall time."""
    run_dir = Path(args.out) / "runs" / f"{arm}-seed{seed}"
    cmd = [
        str(BIN / "fer-train"),
        *RECIPE,
        f"seed={seed}",
        *arm_overrides(arm, args.batch),
        f"hydra.run.dir={run_dir}",
        *args.overrides,
    ]
    print(shlex.join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    metrics = json.loads((run_dir / "metrics.json").read_text())
    job = Path(args.out) / "jobs" / f"{arm}-seed{seed}"
    job.mkdir(parents=True, exist_ok=True)
    shutil.copy2(run_dir / "metrics.json", job / "metrics.json")
    shutil.copy2(run_dir / ".hydra" / "overrides.yaml", job / "overrides.yaml")
    return {"arm": arm, "seed": seed, "command": shlex.join(cmd), "wall_s": round(wall, 1), **metrics}


def table(runs: list[dict]) -> str:
    """Markdown: one line per seed (single, DDP, difference) and the mean over seeds."""
    by = {(r["arm"], r["seed"]): r for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    lines = [
        "| seed | one process test acc (%) | 2-process DDP test acc (%) | DDP - one (points) | "
        "one process min | DDP min |",
        "|---|---|---|---|---|---|",
    ]
    diffs = []
    for seed in seeds:
        one, ddp = by[("single", seed)], by[("ddp", seed)]
        diff = 100 * (ddp["test/acc"] - one["test/acc"])
        diffs.append(diff)
        lines.append(
            f"| {seed} | {100 * one['test/acc']:.2f} | {100 * ddp['test/acc']:.2f} | {diff:+.2f} | "
            f"{one['wall_s'] / 60:.1f} | {ddp['wall_s'] / 60:.1f} |"
        )
    ones = [100 * by[("single", s)]["test/acc"] for s in seeds]
    ddps = [100 * by[("ddp", s)]["test/acc"] for s in seeds]
    lines.append(
        f"| mean | {statistics.mean(ones):.2f} | {statistics.mean(ddps):.2f} | "
        f"{statistics.mean(diffs):+.2f} | | |"
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.ddp_parity", description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--batch", type=int, default=32, help="the global batch of both arms")
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    args.overrides = extra
    started = datetime.now(UTC)
    runs = [run_arm(arm, int(s), args) for s in args.seeds.split(",") for arm in ("single", "ddp")]
    out = Path(args.out)
    (out / "runs.json").write_text(json.dumps(runs, indent=1))
    (out / "table.md").write_text(table(runs))
    record = {
        "command": shlex.join(["python", "-m", "experiments.ddp_parity", *argv]),
        "machine": machine(),
        "started": started.isoformat(timespec="seconds"),
        "ended": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (out / "run.json").write_text(json.dumps(record, indent=1))
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())

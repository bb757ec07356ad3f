"""How many epochs the GPU sweep gets, from a timed first epoch (the probe: one epoch of the full model).

With ``deadline`` the seconds the whole run may take, ``elapsed`` those gone when the probe ends,
``reserve`` those kept for fer-report, the bench and packing, ``epoch`` the probe's first epoch (training
and validation, ``time/epoch_s`` of its csv/metrics.csv) and ``startup`` the rest of the probe's wall time
(Python, Hydra, reading the decoded faces, building the network, the last checkpoint):

    left   = deadline - elapsed - reserve
    epochs = floor((left - jobs * startup) / (jobs * epoch)), at most max_epochs

``jobs`` is 2 (full and vgg16), and vgg16's epoch is counted as the full model's: it is the smaller
network (about half the time on a CPU), so the estimate errs towards ending early. The first epoch includes
cuDNN's and the allocator's warm-up, another error towards ending early. When not even one epoch of each
fits, each job trains one epoch on the fraction ``(left - jobs * startup) / (jobs * epoch)`` of the
training batches (``trainer.limit_train_batches``, at least ``min_fraction``).

    python -m experiments.gpu.plan --probe <run dir> --probe-wall 40 --elapsed 75 --deadline 480 --reserve 75
    -> "12 1.0 <the sums>" (epochs, limit_train_batches, how they were reached)
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path


def first_epoch_seconds(run_dir: Path) -> float:
    """``time/epoch_s`` of the first epoch in ``run_dir/csv/metrics.csv``."""
    path = run_dir / "csv" / "metrics.csv"
    if not path.is_file():
        raise SystemExit(f"error: probe: {path} missing (the probe run failed: see its log)")
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get("time/epoch_s"):
                return float(row["time/epoch_s"])
    raise SystemExit(f"error: probe: no time/epoch_s in {path}")


def plan(
    deadline: float,
    elapsed: float,
    reserve: float,
    epoch: float,
    startup: float,
    jobs: int = 2,
    max_epochs: int = 30,
    min_fraction: float = 0.05,
) -> tuple[int, float, str]:
    """``(epochs, limit_train_batches, explanation)`` by the formula of the module docstring."""
    left = deadline - elapsed - reserve
    train = left - jobs * startup
    fit = train / (jobs * epoch) if epoch > 0 else float(max_epochs)
    sums = (
        f"left = {deadline:.0f} - {elapsed:.0f} - {reserve:.0f} = {left:.0f} s; "
        f"({left:.0f} - {jobs} x {startup:.1f}) / ({jobs} x {epoch:.1f}) = {fit:.2f} epochs"
    )
    if fit >= 1:
        epochs = min(max_epochs, math.floor(fit))
        return (
            epochs,
            1.0,
            f"{sums}; {epochs} epochs" + (f" (max_epochs {max_epochs})" if fit > max_epochs else ""),
        )
    fraction = round(max(min_fraction, fit), 3)
    return 1, fraction, f"{sums}; 1 epoch on {fraction:.0%} of the training batches"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.gpu.plan", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--probe", type=Path, required=True, help="the probe's run dir")
    parser.add_argument("--probe-wall", type=float, required=True, help="the probe's wall time, s")
    parser.add_argument("--elapsed", type=float, required=True, help="seconds since the run started")
    parser.add_argument("--deadline", type=float, default=480.0)
    parser.add_argument("--reserve", type=float, default=75.0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--max-epochs", type=int, default=30)
    args = parser.parse_args(argv)
    epoch = first_epoch_seconds(args.probe)
    startup = max(0.0, args.probe_wall - epoch)
    epochs, fraction, why = plan(
        args.deadline, args.elapsed, args.reserve, epoch, startup, args.jobs, args.max_epochs
    )
    print(
        f"{epochs} {fraction} probe: first epoch {epoch:.1f} s, start-up and the rest {startup:.1f} s; {why}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How many jobs of a sweep should run side by side on this machine? The same `make ablation-modules`
sweep runs once per JOBS value (JOBS=1: one job at a time with every core; JOBS=n: n jobs of cores / n
threads through Hydra's joblib launcher), on a quiet machine, one arm after the other; the table gives
each arm's wall clock, its speed-up over JOBS=1 and each job's test accuracy per arm.

    python -m experiments.sweep_jobs --out experiments/results/sweep_jobs_ckplus48_cpu [--jobs 1,2]
        [--folds 0,1] [--epochs 4] [--data ckplus --root ../shared/data/ckplus48]

ablation_modules has 5 rows, so 2 folds make the 10-job sweep. Each job's metrics.json is copied to
<out>/jobs/jobs<n>/<job>/; the sweep's own logs stay in <out>/runs/ (not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from fer_attention.reporting.results import machine


def sweep_command(args, jobs: int, sweep_dir: Path) -> list[str]:
    """The make command of one arm: the user's own table target at JOBS=``jobs``."""
    return [
        "make",
        "--no-print-directory",
        "ablation-modules",
        f"DATA={args.data}",
        f"DATA_ROOT={args.root}",
        f"FOLDS={args.folds}",
        "SEEDS=0",
        f"EPOCHS={args.epochs}",
        f"JOBS={jobs}",
        f"SWEEP_DIR={sweep_dir}",
    ]


def job_metrics(sweep_dir: Path) -> dict[str, dict]:
    """Each finished job's metrics.json in a sweep dir, by the job's override string."""
    found = {}
    for path in sorted(sweep_dir.glob("*/metrics.json")):
        metrics = json.loads(path.read_text())
        overrides = (path.parent / ".hydra" / "overrides.yaml").read_text()
        key = " ".join(
            line.removeprefix("- ").strip()
            for line in overrides.splitlines()
            if line.startswith("- ") and line.removeprefix("- ").split("=")[0] in ("ablation", "data.fold")
        )
        found[key] = {"dir": path.parent.name, "metrics": metrics}
    return found


def run_arm(args, jobs: int) -> dict:
    """Run one arm's sweep; its wall clock and jobs."""
    sweep_dir = Path(args.out) / "runs" / f"jobs{jobs}"
    if sweep_dir.exists():
        shutil.rmtree(sweep_dir)
    cmd = sweep_command(args, jobs, sweep_dir)
    print(shlex.join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - start
    jobs_found = job_metrics(sweep_dir)
    for job in jobs_found.values():
        dest = Path(args.out) / "jobs" / f"jobs{jobs}" / job["dir"]
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "metrics.json").write_text(json.dumps(job["metrics"], indent=1))
    return {"jobs": jobs, "command": shlex.join(cmd), "wall_s": wall, "results": jobs_found}


def machine_text(m: dict) -> str:
    """``reporting.results.machine()`` in one line."""
    parts = [m.get("cpu"), m.get("memory_gib") and f"{m['memory_gib']} GiB", m.get("gpu") or "no GPU"]
    parts += [
        m.get("os"),
        m.get("python") and f"Python {m['python']}",
        m.get("torch") and f"torch {m['torch']}",
    ]
    return ", ".join(str(p) for p in parts if p)


def render(record: dict) -> str:
    """README.md: the arms' wall clocks, then every job's test accuracy in each arm."""
    arms = record["arms"]
    base = arms[0]["wall_s"]
    cores = record["cores"]
    lines = [
        "# Jobs side by side: wall clock of one sweep per JOBS value",
        "",
        f"Machine: {machine_text(record['machine'])}; {cores} cores; {record['started']} to "
        f"{record['ended']} (UTC).",
        f"Command: `{record['command']}`",
        "",
        "| JOBS x threads | wall clock | faster than JOBS=1 | jobs finished |",
        "|---|---|---|---|",
    ]
    for arm in arms:
        threads = cores // arm["jobs"]
        lines.append(
            f"| {arm['jobs']} x {threads} | {arm['wall_s']:.0f} s | {base / arm['wall_s']:.2f}x | "
            f"{len(arm['results'])} |"
        )
    keys = sorted(set().union(*(arm["results"] for arm in arms)))
    lines += [
        "",
        "Each job's test accuracy per arm (a 1-thread and a 2-thread job sum in different orders, so the",
        "figures agree only to rounding and its effect on training, docs/scaling.md):",
        "",
        "| job | " + " | ".join(f"JOBS={arm['jobs']}" for arm in arms) + " |",
        "|---|" + "---|" * len(arms),
    ]
    for key in keys:
        cells = [
            f"{100 * arm['results'][key]['metrics']['test/acc']:.2f}" if key in arm["results"] else "-"
            for arm in arms
        ]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines += ["", "Every job's metrics.json: `jobs/jobs<n>/<job dir>/`. Rerun: the command above."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="logs/sweep_jobs")
    parser.add_argument("--jobs", default="1,2", help="comma-separated JOBS values, the first the baseline")
    parser.add_argument("--data", default="ckplus")
    parser.add_argument("--root", default="../shared/data/ckplus48")
    parser.add_argument("--folds", default="0,1")
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    arms = [run_arm(args, int(n)) for n in args.jobs.split(",")]
    record = {
        "command": "python -m experiments.sweep_jobs " + shlex.join(argv),
        "machine": machine(),
        "cores": os.cpu_count(),
        "started": started.isoformat(timespec="seconds"),
        "ended": datetime.now(UTC).isoformat(timespec="seconds"),
        "arms": [{k: v for k, v in arm.items() if k != "results"} for arm in arms],
    }
    out = Path(args.out)
    (out / "run.json").write_text(json.dumps(record, indent=1))
    (out / "README.md").write_text(render({**record, "arms": arms}))
    print((out / "README.md").read_text())
    return record


if __name__ == "__main__":
    main()

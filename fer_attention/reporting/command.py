"""What `fer-report` does with its parsed command line: one table (published into a result folder and
logged to W&B if asked), the paired comparisons along a config key, or the cross-dataset table; each
prints its table and where its files went."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from fer_attention.errors import ReportError
from fer_attention.reporting.aggregate import report
from fer_attention.reporting.along import along_report
from fer_attention.reporting.cross import cross_report
from fer_attention.reporting.dashboard import DashboardUnavailable, log_report
from fer_attention.reporting.results import publish, write_readme

TABLE_FILES = "table.md, table.csv, folds.csv, plot.png, curves.png, confusion_*.png"
CROSS_FILES = "table.md, table.csv"


def run_report(args: argparse.Namespace, command: str) -> int:
    """Make the report fer-report's ``args`` ask for and print it; ``command`` (the fer-report command
    line) is recorded in W&B. Returns the exit status: 1 after a one-line error, else 0."""
    try:
        if args.along:
            return _along(args)
        if args.cross:
            result = cross_report(
                args.multirun_dir[0], args.out or "logs/reports/cross", publish=args.publish
            )
            files = CROSS_FILES
        else:
            result, dirs = _table(args)
            files = TABLE_FILES
    except (FileNotFoundError, ReportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(result["table"])
    print(f"written to {result['out_dir']}/ ({files})")
    if args.wandb and not args.cross:
        _log_to_wandb(result, dirs[0], command)
    return 0


def _along(args: argparse.Namespace) -> int:
    rows = [r.strip() for r in args.rows.split(",")] if args.rows else None
    out = args.out or "logs/reports/along"
    result = along_report(args.multirun_dir, args.along, out, args.reference, rows)
    print(result["table"])
    print(f"written to {result['out_dir']}/ (along.md, along.csv, along.png)")
    return 0


def _table(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """The table of the sweep dirs (with ``--publish``: of the result folder they are published into);
    returns :func:`report`'s result and the dirs it read."""
    seeds = [s.strip() for s in args.seeds.split(",")] if args.seeds else None
    dirs = args.multirun_dir
    if args.publish:
        info = publish(dirs[0], args.out, append=args.append)
        print(json.dumps({k: info[k] for k in ("command", "wall_seconds", "jobs", "finished")}))
        if args.append:
            dirs = [f"{args.out}/jobs"]
    result = report(dirs, args.out, args.name, args.reference, seeds)
    if args.publish:
        write_readme(args.out, info, result["table"])
    return result, dirs


def _log_to_wandb(result: dict[str, Any], sweep_dir: str, command: str) -> None:
    try:
        run_dir = log_report(result, sweep_dir, command)
        print(f"W&B report run: {run_dir}")
    except DashboardUnavailable as err:
        print(f"warning: {err}", file=sys.stderr)

"""What `fer-report` does with its parsed command line: one table (published into a result folder and
logged to W&B if asked), the paired comparisons along a config key, or the cross-dataset table; each
prints its table and where its files went.

A published result folder records the report's own arguments in ``run.json`` (``report_args``), and
``fer-report <folder>/jobs`` reuses them (:func:`apply_recorded_args`), so that a folder re-derives with
the command its README names. A folder's ``along.csv`` is recorded there too: by ``--publish --along KEY``
(the table, then the comparisons along KEY over the published jobs, in one run), or by a later
``fer-report <folder>/jobs <other dirs> --along KEY --out <folder>`` (``<folder>/run.json`` exists and
``<folder>/jobs`` is one of the dirs): ``along``, ``rows`` and the pooled dirs (``along_dirs``, relative
to the folder) are added to the record. One re-aggregation makes both files with one ``--reference``,
``--rope`` and ``--decide``, so such an ``--along`` must use the ones the table records."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from fer_attention.errors import ReportError
from fer_attention.reporting.aggregate import report
from fer_attention.reporting.along import along_report
from fer_attention.reporting.cross import cross_report
from fer_attention.reporting.dashboard import DashboardUnavailable, log_report
from fer_attention.reporting.decision import check_decide, check_rope
from fer_attention.reporting.results import (
    ALONG_DIRS,
    REPORT_ARGS,
    publish,
    read_report_args,
    record_report_args,
    write_readme,
)

TABLE_FILES = "table.md, table.csv, folds.csv, plot.png, curves.png, confusion_*.png"
CROSS_FILES = "table.md, table.csv"
ALONG_FILES = "along.md, along.csv, along.png"
# what shapes the table (the along's own options, along and rows, are recorded by _along)
TABLE_ARGS = ("reference", "seeds", "name", "rope", "decide")


def run_report(args: argparse.Namespace, command: str) -> int:
    """Make the report fer-report's ``args`` ask for and print it; ``command`` (the fer-report command
    line) is recorded in W&B. Returns the exit status: 1 after a one-line error, else 0."""
    try:
        apply_recorded_args(args)
        rope, decide = check_rope(args.rope), check_decide(args.decide)
        if args.along and not _table_too(args):
            return _along(args, rope, decide)
        if args.cross:
            result = cross_report(
                args.multirun_dir[0], args.out or "logs/reports/cross", publish=args.publish
            )
            files = CROSS_FILES
        else:
            result, dirs = _table(args, rope, decide)
            files = TABLE_FILES
    except (FileNotFoundError, ReportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(result["table"])
    print(f"written to {result['out_dir']}/ ({files})")
    if args.wandb and not args.cross:
        _log_to_wandb(result, dirs[0], command)
    if args.along and not args.cross:
        try:
            return _along(args, rope, decide, result["out_dir"])
        except (FileNotFoundError, ReportError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    return 0


def apply_recorded_args(args: argparse.Namespace) -> list[str]:
    """Fill each of ``args``' :data:`REPORT_ARGS` that the command line left out (None) from the
    ``report_args`` of the result folder it re-aggregates (:func:`recorded_folder`), print one line
    naming those reused, and return their names. An option given as ``''`` drops the recorded value
    (the default again). A reused ``along`` brings its pooled dirs (``args.along_dirs``, else None):
    the command then makes the table and along.csv, as the folder holds them."""
    args.along_dirs = None
    folder = recorded_folder(args)
    recorded = read_report_args(folder) if folder is not None else {}
    reused = [k for k in REPORT_ARGS if k in recorded and getattr(args, k, None) is None]
    for key in reused:
        setattr(args, key, recorded[key])
    for key in REPORT_ARGS:
        if getattr(args, key, None) == "":
            setattr(args, key, None)
    if "along" in reused and args.along:
        own = Path(args.out) / "jobs" if args.publish else folder / "jobs"
        args.along_dirs = [
            str(own if d == "jobs" else folder / d) for d in recorded.get(ALONG_DIRS) or ["jobs"]
        ]
    if reused:
        shown = " ".join(f"--{k} {shlex.quote(str(getattr(args, k)))}" for k in reused)
        print(f"reusing the report arguments recorded in {folder}/run.json: {shown}")
    return reused


def recorded_folder(args: argparse.Namespace) -> Path | None:
    """The result folder whose ``run.json`` records the arguments of the report ``args`` ask for: OUT
    with ``--publish --append`` (the report is over OUT/jobs), else ``<folder>`` when the one sweep dir is
    ``<folder>/jobs`` with ``<folder>/run.json`` beside it; None otherwise (and for ``--cross``)."""
    if getattr(args, "cross", False):
        return None
    if args.publish and args.append and args.out:
        folder = Path(args.out)
    elif len(args.multirun_dir) == 1 and Path(args.multirun_dir[0]).name == "jobs":
        folder = Path(args.multirun_dir[0]).parent
    else:
        return None
    return folder if (folder / "run.json").is_file() else None


def _table_too(args: argparse.Namespace) -> bool:
    """Whether an ``--along`` report also makes the table: with ``--publish``, or when the along was
    reused from a result folder's record (that folder holds both)."""
    return bool(args.publish or getattr(args, "along_dirs", None) is not None)


def _along(args: argparse.Namespace, rope: float, decide: float, out: str | None = None) -> int:
    """The comparisons along ``args.along`` into ``out`` (default OUT, else logs/reports/along); recorded
    in OUT/run.json when that is the result folder they compare (see :func:`_along_record`)."""
    rows = [r.strip() for r in args.rows.split(",")] if args.rows else None
    out = out or args.out or "logs/reports/along"
    if getattr(args, "along_dirs", None) is not None:
        dirs = args.along_dirs
    elif args.publish:
        dirs = [f"{args.out}/jobs"]
    else:
        dirs = args.multirun_dir
    record = _along_record(args, dirs)
    result = along_report(dirs, args.along, out, args.reference, rows, rope=rope, decide=decide)
    if record is not None:
        record_report_args(args.out, record)
    print(result["table"])
    print(f"written to {result['out_dir']}/ ({ALONG_FILES})")
    return 0


def _along_record(args: argparse.Namespace, dirs: list[str]) -> dict[str, Any] | None:
    """What an along adds to OUT/run.json's ``report_args`` (``along``, ``rows``, ``along_dirs``), or
    None when it is not recorded: only a command-line ``--along`` or ``--publish`` records, and only into
    an OUT with run.json whose ``jobs/`` is among ``dirs``.

    Raises:
        ReportError: ``--reference``, ``--rope`` or ``--decide`` differs from the value OUT/run.json
            records for the table (one re-aggregation makes both with the same value).
    """
    if args.out is None or (args.along_dirs is not None and not args.publish):
        return None
    out = Path(args.out)
    own = (out / "jobs").resolve()
    if not (out / "run.json").is_file() or all(Path(d).resolve() != own for d in dirs):
        return None
    recorded = read_report_args(out)
    same = {
        "reference": lambda a, b: a == b,
        "rope": lambda a, b: check_rope(a) == check_rope(b),
        "decide": lambda a, b: check_decide(a) == check_decide(b),
    }
    for key, equal in same.items():
        given, table = getattr(args, key), recorded.get(key)
        if not equal(given, table):
            raise ReportError(
                f"--{key} {given or '(default)'} differs from the table's {table or '(default)'} that "
                f"{out}/run.json records; give --along the table's --{key}, or republish the table with it"
            )
    return {"along": args.along, "rows": args.rows, ALONG_DIRS: [os.path.relpath(d, out) for d in dirs]}


def _table(args: argparse.Namespace, rope: float, decide: float) -> tuple[dict[str, Any], list[str]]:
    """The table of the sweep dirs (with ``--publish``: of the result folder they are published into,
    whose run.json records the options in :data:`TABLE_ARGS` that were given); returns :func:`report`'s
    result and the dirs it read."""
    seeds = [s.strip() for s in args.seeds.split(",")] if args.seeds else None
    dirs = args.multirun_dir
    if args.publish:
        table_args = {k: getattr(args, k) for k in TABLE_ARGS if getattr(args, k) is not None}
        info = publish(dirs[0], args.out, append=args.append, report_args=table_args)
        print(json.dumps({k: info[k] for k in ("command", "wall_seconds", "jobs", "finished")}))
        if args.append:
            dirs = [f"{args.out}/jobs"]
    result = report(dirs, args.out, args.name, args.reference, seeds, rope=rope, decide=decide)
    if args.publish:
        write_readme(args.out, info, result["table"])
    return result, dirs


def _log_to_wandb(result: dict[str, Any], sweep_dir: str, command: str) -> None:
    try:
        run_dir = log_report(result, sweep_dir, command)
        print(f"W&B report run: {run_dir}")
    except DashboardUnavailable as err:
        print(f"warning: {err}", file=sys.stderr)

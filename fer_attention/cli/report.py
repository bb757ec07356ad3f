"""`fer-report <multirun dir> [<more dirs>] [--out DIR] [--name NAME] [--reference ROW] [--seeds S,..]
[--publish [--append]]`: aggregate a sweep (or pool several) into a table with paired tests against a
reference row, folds.csv and plots. `fer-report --cross <dir>`: the cross-dataset table of the fer-eval
runs under <dir>."""

from __future__ import annotations

import argparse
import json
import sys

from fer_attention.reporting.aggregate import ReportError, report
from fer_attention.reporting.along import along_report
from fer_attention.reporting.cross import cross_report
from fer_attention.reporting.dashboard import DashboardUnavailable, log_report
from fer_attention.reporting.results import publish, write_readme


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fer-report", description=__doc__)
    parser.add_argument(
        "multirun_dir",
        nargs="+",
        help="a Hydra multirun directory (logs/<task>/multiruns/<date_time>); several are pooled",
    )
    parser.add_argument("--out", default=None, help="output directory (default logs/reports/<table name>)")
    parser.add_argument("--name", default=None, help="table name (default the sweep's task_name)")
    parser.add_argument(
        "--reference",
        default=None,
        help="the row the others are compared with, e.g. 'lbp=uniform' (default: the config defaults, "
        "i.e. the paper's choices full / circle / d123)",
    )
    parser.add_argument(
        "--seeds", default=None, help="only these seeds, comma-separated (e.g. 0 for a one-seed table)"
    )
    parser.add_argument(
        "--append",
        action="store_true",
        help="with --publish: add this sweep's jobs to OUT/jobs/ (more seeds of a committed table) and "
        "report over all of OUT/jobs/",
    )
    parser.add_argument(
        "--publish",
        action="store_true",
        help="also copy the jobs' configs, metrics and status (no checkpoints) into OUT/jobs/ and write "
        "OUT/run.json and OUT/README.md (command, machine, dates, wall time; a '## Notes' section in an "
        "existing README is kept): a folder that `fer-report OUT/jobs --out OUT` re-aggregates",
    )
    parser.add_argument(
        "--along",
        default=None,
        metavar="KEY",
        help="compare the rows with the reference separately at each value of a config key (e.g. "
        "model.net.backbone.width): along.md, along.csv and along.png in OUT",
    )
    parser.add_argument(
        "--rows", default=None, help="with --along: only these rows, comma-separated (e.g. full,vgg16)"
    )
    parser.add_argument(
        "--wandb",
        action="store_true",
        help="also log the table, folds, plots and command to W&B as a run of job type 'report' in the "
        "sweep's group (offline under OUT/wandb without credentials)",
    )
    parser.add_argument(
        "--cross",
        action="store_true",
        help="the directory holds fer-eval runs of models on other datasets: write the cross-dataset table "
        "(training sets x test sets) instead (default OUT logs/reports/cross)",
    )
    args = parser.parse_args(argv)
    if args.publish and args.out is None and not args.cross:
        parser.error("--publish needs --out")
    if args.append and not args.publish:
        parser.error("--append needs --publish")
    if args.publish and len(args.multirun_dir) > 1:
        parser.error("--publish takes one sweep dir (add more with --append, one at a time)")
    seeds = [s.strip() for s in args.seeds.split(",")] if args.seeds else None
    try:
        if args.along:
            rows = [r.strip() for r in args.rows.split(",")] if args.rows else None
            out = args.out or "logs/reports/along"
            result = along_report(args.multirun_dir, args.along, out, args.reference, rows)
            print(result["table"])
            print(f"written to {result['out_dir']}/ (along.md, along.csv, along.png)")
            return 0
        if args.cross:
            result = cross_report(
                args.multirun_dir[0], args.out or "logs/reports/cross", publish=args.publish
            )
            files = "table.md, table.csv"
        else:
            dirs = args.multirun_dir
            if args.publish:
                info = publish(dirs[0], args.out, append=args.append)
                print(json.dumps({k: info[k] for k in ("command", "wall_seconds", "jobs", "finished")}))
                if args.append:
                    dirs = [f"{args.out}/jobs"]
            result = report(dirs, args.out, args.name, args.reference, seeds)
            if args.publish:
                write_readme(args.out, info, result["table"])
            files = "table.md, table.csv, folds.csv, plot.png, curves.png, confusion_*.png"
    except (FileNotFoundError, ReportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(result["table"])
    print(f"written to {result['out_dir']}/ ({files})")
    if args.wandb and not args.cross:
        try:
            run_dir = log_report(
                result, dirs[0], "fer-report " + " ".join(argv if argv is not None else sys.argv[1:])
            )
            print(f"W&B report run: {run_dir}")
        except DashboardUnavailable as err:
            print(f"warning: {err}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

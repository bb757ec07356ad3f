"""`fer-report <multirun dir> [<more dirs>] [--out DIR] [--name NAME] [--reference ROW] [--seeds S,..]
[--rope POINTS] [--decide P] [--publish [--append]]`: aggregate a sweep (or pool several) into a table with paired tests against a
reference row, folds.csv and plots. `fer-report --cross <dir>`: the cross-dataset table of the fer-eval
runs under <dir>."""

from __future__ import annotations

import argparse
import sys

from fer_attention.reporting.command import run_report


def main(argv: list[str] | None = None) -> int:
    """fer-report: parse ``argv`` (default the command line), check that its flags go together, make the
    report; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.publish and args.out is None and not args.cross:
        parser.error("--publish needs --out")
    if args.append and not args.publish:
        parser.error("--append needs --publish")
    if args.publish and len(args.multirun_dir) > 1:
        parser.error("--publish takes one sweep dir (add more with --append, one at a time)")
    return run_report(args, "fer-report " + " ".join(argv if argv is not None else sys.argv[1:]))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fer-report", description=__doc__)
    _add_table_arguments(parser)
    _add_output_arguments(parser)
    return parser


def _add_table_arguments(parser: argparse.ArgumentParser) -> None:
    """Which jobs, which rows, which reference."""
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
        "--rope",
        default=None,
        help="region of practical equivalence, in accuracy points: a row within ±ROPE of the reference is "
        "'equivalent' (default 2)",
    )
    parser.add_argument(
        "--decide",
        default=None,
        help="posterior probability at which a row's outcome is decided, in (0.5, 1) (default 0.95)",
    )


def _add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """What else is written: a published result folder, the comparisons along a key, W&B, the
    cross-dataset table."""
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
        "OUT/run.json and OUT/README.md (command, machine, dates, wall time, and this report's --reference, "
        "--seeds, --name, --rope, --decide as run.json's report_args; a '## Notes' section in an existing "
        "README is kept): a folder that `fer-report OUT/jobs --out OUT` re-aggregates into the same table, "
        "reusing report_args for each option not given",
    )
    parser.add_argument(
        "--along",
        default=None,
        metavar="KEY",
        help="compare the rows with the reference separately at each value of a config key (e.g. "
        "model.net.backbone.width): along.md, along.csv and along.png in OUT; with --publish, or when "
        "OUT/jobs is one of the dirs and OUT/run.json exists, recorded in its report_args, so that "
        "`fer-report OUT/jobs` makes the table and along.csv again",
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


if __name__ == "__main__":
    sys.exit(main())

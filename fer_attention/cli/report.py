"""`fer-report <multirun dir> [--out DIR] [--name NAME]`: aggregate a sweep into a table and plots."""

from __future__ import annotations

import argparse
import sys

from fer_attention.reporting.aggregate import report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fer-report", description=__doc__)
    parser.add_argument("multirun_dir", help="a Hydra multirun directory (logs/<task>/multiruns/<date_time>)")
    parser.add_argument("--out", default=None, help="output directory (default logs/reports/<table name>)")
    parser.add_argument("--name", default=None, help="table name (default the sweep's task_name)")
    args = parser.parse_args(argv)
    try:
        result = report(args.multirun_dir, args.out, args.name)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(result["table"])
    print(f"written to {result['out_dir']}/ (table.md, table.csv, plot.png, confusion_*.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

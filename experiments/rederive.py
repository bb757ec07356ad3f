"""Re-aggregate committed result folders from their jobs alone: `python -m experiments.rederive [FOLDER ...]
[--check]` (`make rederive`).

Each folder under experiments/results that holds `jobs/` and a `table.csv` is re-derived with the command its
README names, `fer-report <folder>/jobs --out <folder>` (its run.json's `report_args` reused), and the table at
the top of its README is rewritten from run.json (the `## Notes` section is kept). `--check` writes into a
temporary folder instead and lists every table.csv / along.csv that differs from the committed one; exit 1
if any does."""

from __future__ import annotations

import argparse
import filecmp
import io
import json
import sys
import tempfile
from contextlib import redirect_stdout
from pathlib import Path

from fer_attention.cli.report import main as report_main
from fer_attention.reporting.results import write_readme

RESULTS = Path(__file__).resolve().parent / "results"
COMPARED_FILES = ("table.csv", "along.csv")


def folders(names: list[str] | None = None) -> list[Path]:
    """The result folders that re-aggregate from ``jobs/`` into a table (all of them, or those named)."""
    found = sorted(_shown(p.parent) for p in RESULTS.glob("*/jobs") if (p.parent / "table.csv").is_file())
    if names:
        wanted = {Path(n).name for n in names}
        found = [f for f in found if f.name in wanted]
    return found


def _shown(path: Path) -> Path:
    """``path`` relative to the working directory where it lies below it (as READMEs name folders)."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def rederive(folder: Path, out: Path) -> int:
    """``fer-report <folder>/jobs --out <out>`` (quietly); the README's table from run.json when ``out`` is the
    folder itself. Returns fer-report's exit status."""
    with redirect_stdout(io.StringIO()):
        status = report_main([str(folder / "jobs"), "--out", str(out)])
    if status == 0 and out == folder and (folder / "run.json").is_file():
        info = json.loads((folder / "run.json").read_text())
        write_readme(folder, info, (folder / "table.md").read_text())
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.rederive", description=__doc__)
    parser.add_argument(
        "folders", nargs="*", help="result folders (default every one with jobs/ and table.csv)"
    )
    parser.add_argument(
        "--check", action="store_true", help="compare with the committed files, write nothing"
    )
    args = parser.parse_args(argv)
    differ = []
    for folder in folders(args.folders):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) if args.check else folder
            if rederive(folder, out) != 0:
                differ.append(f"{folder.name}: fer-report failed")
                continue
            for name in COMPARED_FILES if args.check else ():
                if (folder / name).is_file() and not filecmp.cmp(folder / name, out / name, shallow=False):
                    differ.append(f"{folder.name}/{name}")
        print(f"{folder.name}: {'checked' if args.check else 'rewritten'}")
    for line in differ:
        print(f"differs: {line}", file=sys.stderr)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())

"""The device tool's limits, checked here: what travels to the lent machine (the tracked files, untracked ones
git does not ignore, and the carried paths: 64 MiB in all) and what comes back from $OUT (at most 8 plain
files, 16 MiB each, 64 MiB together, no more than 2 folders down, names of letters, digits, '.', '_', '-').

    python -m experiments.gpu.transfer size --carry gpu_bundle   # the sizes; exit 1 over 64 MiB
    python -m experiments.gpu.transfer out logs/gpu               # exit 1 naming what would not come back
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

MIB = 2**20
TREE_LIMIT = 64 * MIB
OUT_FILES, OUT_FILE_BYTES, OUT_TOTAL, OUT_FOLDERS = 8, 16 * MIB, 64 * MIB, 2
OUT_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
REPO = Path(__file__).resolve().parents[2]


def git_files(repo: Path, *args: str) -> list[Path]:
    done = subprocess.run(["git", "ls-files", "-z", *args], cwd=repo, capture_output=True, check=True)
    return [repo / name for name in done.stdout.decode("utf-8", "surrogateescape").split("\0") if name]


def sizes(paths: list[Path]) -> tuple[int, int]:
    """(files, bytes) of the plain files among ``paths`` (links count as links; missing ones not at all)."""
    count = total = 0
    for path in paths:
        if path.is_symlink() or path.is_file():
            count += 1
            total += path.lstat().st_size
    return count, total


def walk(folder: Path) -> list[Path]:
    return [Path(d) / f for d, _, files in os.walk(folder) for f in files]


def travelling(repo: Path, carry: list[Path]) -> list[tuple[str, int, int]]:
    """``(what, files, bytes)``: tracked files, untracked ones git does not ignore, then each carried path."""
    rows = [
        ("tracked files", *sizes(git_files(repo))),
        ("untracked, not ignored", *sizes(git_files(repo, "--others", "--exclude-standard"))),
    ]
    for path in carry:
        full = path if path.is_absolute() else repo / path
        rows.append((f"{path} (carry)", *sizes(walk(full) if full.is_dir() else [full])))
    return rows


def size_report(rows: list[tuple[str, int, int]], limit: int = TREE_LIMIT) -> tuple[list[str], bool]:
    """Lines of a size table, and whether the total fits under ``limit``."""
    total = sum(r[2] for r in rows)
    lines = [f"travelling to the GPU machine (the device tool's limit: {limit / MIB:.2f} MiB):"]
    lines += [f"  {what:<32} {n:>6,d} files {b / MIB:9.2f} MiB" for what, n, b in rows]
    fits = total <= limit
    verdict = (
        f"fits, {(limit - total) / MIB:.2f} MiB to spare"
        if fits
        else f"{(total - limit) / MIB:.2f} MiB too many"
    )
    lines.append(f"  {'total':<32} {'':>12} {total / MIB:9.2f} MiB: {verdict}")
    return lines, fits


def out_problems(out: Path) -> list[str]:
    """What under ``out`` would not come back from the device machine (empty: all of it comes back)."""
    problems = []
    files = []
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        if any(not OUT_NAME.match(part) for part in rel.parts):
            problems.append(f"{rel}: a name with characters other than letters, digits, '.', '_', '-'")
        if path.is_symlink() or not (path.is_dir() or path.is_file()):
            problems.append(f"{rel}: not a plain file or folder")
        elif path.is_file():
            files.append((rel, path.stat().st_size))
            if len(rel.parts) - 1 > OUT_FOLDERS:
                problems.append(f"{rel}: more than {OUT_FOLDERS} folders down")
            if path.stat().st_size > OUT_FILE_BYTES:
                problems.append(
                    f"{rel}: {path.stat().st_size / MIB:.1f} MiB, over {OUT_FILE_BYTES // MIB} MiB"
                )
    if len(files) > OUT_FILES:
        problems.append(f"{len(files)} files, over {OUT_FILES}: {', '.join(str(f) for f, _ in files)}")
    total = sum(s for _, s in files)
    if total > OUT_TOTAL:
        problems.append(f"{total / MIB:.1f} MiB in all, over {OUT_TOTAL // MIB} MiB")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.gpu.transfer", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("size", help="what would travel, against 64 MiB")
    p.add_argument("--carry", type=Path, action="append", default=[])
    p = sub.add_parser("out", help="whether everything under OUT would come back")
    p.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    if args.cmd == "size":
        lines, fits = size_report(travelling(REPO, args.carry))
        print("\n".join(lines))
        if not fits:
            print(
                "error: too much would travel; the ways out are in docs/scaling.md#what-travels",
                file=sys.stderr,
            )
        return 0 if fits else 1
    problems = out_problems(args.out)
    for line in problems:
        print(f"error: OUT={args.out}: {line}", file=sys.stderr)
    if not problems:
        files = [p for p in args.out.rglob("*") if p.is_file()]
        total = sum(p.stat().st_size for p in files)
        print(f"OUT={args.out}: {len(files)} files, {total / MIB:.2f} MiB: all of it comes back")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

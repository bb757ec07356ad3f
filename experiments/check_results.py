"""`python -m experiments.check_results` (`make check-results`): every figure the README and docs cite
from a result folder must be that folder's figure.

Two kinds of citation are checked, in README.md, experiments/README.md and docs/*.md:

- a markdown table whose preceding paragraph links `experiments/results/<folder>/`: each row's cells
  under the headers the folder's `table.md` also has (test accuracy, Δ with its interval, the p
  columns, W/T/L) must equal that folder's row of the same name;
- a percentage with two decimals (`92.69%`), a difference with its interval (`-1.22 [-4.91, +2.47]`), a
  p-value (`p 0.498`, `Holm 0.971`), the decision's probabilities (`0.33 / 0.63 / 0.04`) or a smallest ROPE
  of equivalence (`±4.32`) in a paragraph that links exactly one result folder, or in a table row
  that links result folders itself (the README's verdict rows), must appear in one of those folders:
  a percentage in its `table.md` or `README.md`, any other figure in the tables fer-report wrote
  there (`table.md`, `along.md`; the README only where a folder has no other table), since a folder's
  notes may quote an older table.

Exits 1 with one line per figure that differs, naming the file, the line, the figure and the folder.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
LINK = re.compile(r"experiments/results/([A-Za-z0-9_.\-]+)|\(results/([A-Za-z0-9_.\-]+)/")
PERCENT = re.compile(r"(?<![\d.])(\d{1,3}\.\d{2})%")
INTERVAL = re.compile(r"[+-]\d+\.\d{2} \[[+-]?\d+\.\d{2}, [+-]?\d+\.\d{2}\]")
P_VALUE = re.compile(r"\b(?:p|Holm)(?: >=| ≥| <=)? (\d\.\d{3})\b")
# the decision's posterior probabilities (ref / ROPE / row) and the smallest ROPE of equivalence (±6.44)
PROBABILITIES = re.compile(r"(?<![\d.])\d\.\d{2} / \d\.\d{2} / \d\.\d{2}(?![\d])")
ROPE_EQUIVALENT = re.compile(r"±(\d+\.\d{2})(?![\d])")
# README header -> the header of table.md it cites (by prefix); other columns are not checked
COLUMNS = (
    (("test acc", "privatetest acc", "acc (%)"), "test acc (%)"),
    (("δ", "Δ"), "Δ"),
    (("p (corrected t)",), "p (corrected t)"),
    (("p (paired t)",), "p (paired t"),
    (("p (holm)",), "p (Holm)"),
    (("p (wilcoxon",), "p (Wilcoxon"),
    (("w/t/l",), "W/T/L"),
    (("p(ref / rope / row)",), "P(ref / ROPE / row)"),
    (("p (tost",), "p (TOST"),
    (("outcome",), "outcome"),
)


@dataclass
class Mismatch:
    file: Path
    line: int
    figure: str
    folder: str
    expected: str

    def __str__(self) -> str:
        rel = self.file.relative_to(ROOT) if self.file.is_relative_to(ROOT) else self.file
        return f"{rel}:{self.line}: {self.figure!r} is not in {self.folder} ({self.expected})"


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _folder_rows(folder: Path) -> tuple[list[str], dict[str, list[str]]] | None:
    """The header and rows (by first cell) of a folder's table.md."""
    table = folder / "table.md"
    if not table.is_file():
        return None
    lines = [ln for ln in table.read_text().splitlines() if ln.startswith("|")]
    if len(lines) < 3:
        return None
    header = _cells(lines[0])
    return header, {_cells(ln)[0]: _cells(ln) for ln in lines[2:]}


def _column(header: list[str], name: str) -> int | None:
    low = name.lower()
    for readme_names, table_prefix in COLUMNS:
        if any(low.startswith(n.lower()) for n in readme_names):
            for i, h in enumerate(header):
                if h.startswith(table_prefix):
                    return i
            return None
    return None


def _folders(text: str) -> list[str]:
    found = []
    for match in LINK.finditer(text):
        name = (match.group(1) or match.group(2)).rstrip(".")
        if (RESULTS / name).is_dir() and name not in found:
            found.append(name)
    return found


def _blocks(lines: list[str]) -> list[tuple[int, list[str]]]:
    """Paragraphs and tables: runs of non-blank lines, with the number of their first line."""
    blocks, current, start = [], [], 0
    for number, line in enumerate(lines, 1):
        if line.strip():
            if not current:
                start = number
            current.append(line)
        elif current:
            blocks.append((start, current))
            current = []
    if current:
        blocks.append((start, current))
    return blocks


def _figures(line: str) -> list[tuple[str, str]]:
    """(as written, as the folder writes it) for each percentage, difference interval and p-value."""
    found = [(m.group(0), m.group(1)) for m in PERCENT.finditer(line)]
    found += [(m.group(0), m.group(0)) for m in INTERVAL.finditer(line)]
    found += [(m.group(0), m.group(1)) for m in P_VALUE.finditer(line)]
    found += [(m.group(0), m.group(0)) for m in PROBABILITIES.finditer(line)]
    found += [(m.group(0), m.group(1)) for m in ROPE_EQUIVALENT.finditer(line)]
    return found


def _known(folders: list[str], notes: bool) -> str:
    """The tables fer-report wrote in the folders (table.md, along.md, and those of a comparison written into
    a subfolder, such as ``votes_vs_label/along.md``), and with ``notes`` their READMEs, whose notes may quote an
    older table: differences and p-values are looked up in the tables only (in the README where a folder has
    no other table)."""
    texts = []
    for name in folders:
        folder = RESULTS / name
        tables = sorted(p for p in folder.glob("*.md") if p.name != "README.md")
        tables += sorted(p for pattern in ("*/table.md", "*/along.md") for p in folder.glob(pattern))
        readme = RESULTS / name / "README.md"
        if notes or not tables:
            tables.append(readme)
        texts += [f.read_text() for f in tables if f.is_file()]
    return "".join(texts)


def _check_figures(path: Path, number: int, line: str, folders: list[str]) -> list[Mismatch]:
    with_notes, tables = _known(folders, notes=True), _known(folders, notes=False)
    return [
        Mismatch(path, number, written, " or ".join(folders), "no such figure")
        for written, figure in _figures(line)
        if figure not in (with_notes if written.endswith("%") else tables)
    ]


def check_file(path: Path) -> tuple[list[Mismatch], int]:
    """The citations of one markdown file that differ from their folder, and how many were checked."""
    lines = path.read_text().splitlines()
    mismatches: list[Mismatch] = []
    checked = 0
    last_folders: list[str] = []
    for start, block in _blocks(lines):
        text = "\n".join(block)
        if block[0].startswith("|") and len(block) >= 3:
            # a table cites the folder linked in the paragraph right above it (or in its own rows)
            folders = _folders(text) or last_folders
            if len(folders) != 1:
                # rows that name their own folders (the README's verdict table): each row's figures
                for offset, line in enumerate(block[2:], 2):
                    if own := _folders(line):
                        checked += len(_figures(line))
                        mismatches += _check_figures(path, start + offset, line, own)
                continue
            if rows := _folder_rows(RESULTS / folders[0]):
                header, by_name = rows
                readme_header = _cells(block[0])
                for offset, line in enumerate(block[2:], 2):
                    cells = _cells(line)
                    name = cells[0].strip("*` ")
                    if name not in by_name:
                        continue
                    for i, cell in enumerate(cells[1:], 1):
                        col = _column(header, readme_header[i]) if i < len(readme_header) else None
                        if col is None or not cell:
                            continue
                        checked += 1
                        want = by_name[name][col]
                        if cell.strip("*") != want:
                            mismatches.append(
                                Mismatch(
                                    path, start + offset, cell, folders[0], f"{name}: {header[col]} {want}"
                                )
                            )
            continue
        folders = _folders(text)
        last_folders = folders or last_folders
        if len(folders) == 1:
            for offset, line in enumerate(block):
                checked += len(_figures(line))
                mismatches += _check_figures(path, start + offset, line, folders)
    return mismatches, checked


def documents(root: Path = ROOT) -> list[Path]:
    """The pages whose citations are checked."""
    return [root / "README.md", root / "experiments" / "README.md", *sorted((root / "docs").glob("*.md"))]


def main(argv: list[str] | None = None) -> int:
    files = [Path(a) for a in argv] if argv else documents()
    mismatches, checked = [], 0
    for path in files:
        found, n = check_file(path)
        mismatches += found
        checked += n
    for m in mismatches:
        print(m)
    print(
        f"{checked} cited figures checked in {len(files)} files, {len(mismatches)} differ from their folder"
    )
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

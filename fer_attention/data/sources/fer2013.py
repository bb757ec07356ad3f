"""FER2013 (Goodfellow et al., ICML 2013 workshop; Kaggle): 35,887 48x48 grayscale faces, 7 classes.

Two layouts, recognised from ``data.root``:

- the original CSV ``fer2013.csv`` (``emotion,pixels,Usage``): ``data.root`` is the CSV, or a folder
  holding ``fer2013.csv`` (or ``fer2013/fer2013.csv``);
- the Kaggle image folders ``train/<class>/Training_*.jpg`` and ``test/<class>/{PublicTest,PrivateTest}_*.jpg``.

Classes are in the CSV's code order, 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral,
for both layouts (the folder names map onto it), so a label index is the FER2013 emotion code that
published models and confusion matrices use. Protocol: Training = train, PublicTest = val,
PrivateTest = test. FER2013 has no subject ids: each image is its own subject.
"""

from __future__ import annotations

import csv
import re
import warnings
from pathlib import Path

import numpy as np

from fer_attention.data.sources.base import (
    SPLIT_ALIASES,
    BadInputs,
    FileSource,
    Manifest,
    carve_val,
    class_lookup,
)
from fer_attention.errors import DataError

CLASS_NAMES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
USAGE_SPLIT = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
SIDE = 48
NUM_PIXELS = SIDE * SIDE
CSV_NAMES = ("fer2013.csv", "icml_face_data.csv")
_PREFIX = re.compile(r"^(Training|PublicTest|PrivateTest)[_-]", re.IGNORECASE)
_PREFIX_SPLIT = {k.lower(): v for k, v in USAGE_SPLIT.items()}


def find_csv(root: Path, names=CSV_NAMES) -> Path | None:
    """``root`` itself if it is a CSV file, else the first of ``names`` in ``root`` or ``root/fer2013``."""
    if root.is_file():
        return root if root.suffix.lower() == ".csv" else None
    for folder in (root, root / "fer2013"):
        for name in names:
            if (folder / name).is_file():
                return folder / name
    return None


def read_fer2013_csv(path: Path, bad: BadInputs, need_emotion: bool = True) -> list[dict]:
    """Rows of a FER2013-style CSV as dicts ``{row, line, emotion, usage, pixels (uint8 48x48) | None}``.

    ``row`` counts data rows from 0 (the FER+ files are aligned on it); a row with bad pixels keeps its
    place with ``pixels=None`` after being reported to ``bad``."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip().lower() for h in next(reader)]
        except StopIteration:
            raise DataError(f"{path}: empty CSV file") from None
        need = ["pixels", "usage"] + (["emotion"] if need_emotion else [])
        missing = [c for c in need if c not in header]
        if missing:
            raise DataError(f"{path}: not a FER2013 CSV (no column {', '.join(missing)}; header {header})")
        ci = {name: header.index(name) for name in ("emotion", "pixels", "usage") if name in header}
        rows, row_no = [], 0
        for fields in reader:
            line = reader.line_num
            if not fields or all(not f.strip() for f in fields):
                continue
            row = {"row": row_no, "line": line, "emotion": None, "usage": None, "pixels": None}
            rows.append(row)
            row_no += 1
            if len(fields) < len(header):
                bad(f"{path}:{line}", f"expected {len(header)} fields, got {len(fields)}")
                continue
            row["usage"] = fields[ci["usage"]].strip()
            if "emotion" in ci:
                row["emotion"] = fields[ci["emotion"]].strip()
            pixels, reason = parse_pixels(fields[ci["pixels"]])
            if reason:
                bad(f"{path}:{line}", reason)
                continue
            row["pixels"] = pixels
    return rows


def parse_pixels(text: str) -> tuple[np.ndarray | None, str | None]:
    """A ``"70 80 82 ..."`` string as a uint8 48x48 face, or ``(None, reason)``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = np.fromstring(text, dtype=np.int32, sep=" ")
    if values.size != NUM_PIXELS:
        count = len(text.split())
        if count != NUM_PIXELS:
            return None, f"expected {NUM_PIXELS} pixels ({SIDE}x{SIDE}), got {count}"
        return None, "pixel values must be integers 0-255"
    if values.min() < 0 or values.max() > 255:
        return None, "pixel values must be integers 0-255"
    return values.astype(np.uint8).reshape(SIDE, SIDE), None


class FER2013Source(FileSource):
    """FER2013 from ``fer2013.csv`` or the Kaggle image folders (see the module docstring).

    ``val_fraction`` / ``seed`` only matter for folder copies without PublicTest files: validation is then
    carved from train (stratified)."""

    name = "fer2013"
    layouts_help = "fer2013.csv (emotion,pixels,Usage) or train/<class>/Training_*.jpg + test/<class>/{PublicTest,PrivateTest}_*.jpg"

    def __init__(self, val_fraction: float = 0.1, seed: int = 0) -> None:
        super().__init__(val_fraction=val_fraction, seed=seed)

    def class_names_for(self, configured):
        return CLASS_NAMES

    def layout(self, root: Path) -> str:
        if find_csv(root) is not None:
            return "csv"
        if root.is_dir() and any((root / d).is_dir() for d in ("train", "test")):
            return "folders"
        raise DataError(f"{root}: not a FER2013 layout; expected {self.layouts_help}")

    def files(self, root: Path) -> list[Path]:
        if self.layout(root) == "csv":
            return [find_csv(root)]
        return self.walk(root)

    def index(self, root: Path, class_names, bad: BadInputs) -> Manifest:
        manifest = Manifest(info={"layout": self.layout(root)})
        if manifest.info["layout"] == "csv":
            self._index_csv(find_csv(root), manifest, bad)
        else:
            self._index_folders(root, manifest, bad)
        return manifest

    def _index_csv(self, path: Path, manifest: Manifest, bad: BadInputs) -> None:
        for r in read_fer2013_csv(path, bad):
            if r["pixels"] is None:
                continue
            where = f"{path}:{r['line']}"
            code = r["emotion"]
            if not (code.isdigit() and int(code) < len(CLASS_NAMES)):
                bad(where, f"unknown emotion code '{code}' (expected 0-{len(CLASS_NAMES) - 1})")
                continue
            split = USAGE_SPLIT.get(r["usage"])
            if split is None:
                bad(where, f"unknown Usage '{r['usage']}' (expected {', '.join(USAGE_SPLIT)})")
                continue
            manifest.add(r["pixels"], int(code), f"row{r['row']}", where, split=split)

    def _index_folders(self, root: Path, manifest: Manifest, bad: BadInputs) -> None:
        lookup = class_lookup(CLASS_NAMES)
        reported: set[Path] = set()
        for path in self.walk(root):
            rel = path.relative_to(root)
            if len(rel.parts) != 3:
                bad(path, f"expected <split>/<class>/<image> under {root}")
                continue
            split_dir, folder, name = rel.parts
            split = SPLIT_ALIASES.get(split_dir.lower())
            if split is None:
                if root / split_dir not in reported:
                    reported.add(root / split_dir)
                    bad(root / split_dir, f"unknown split folder '{split_dir}' (expected train, val or test)")
                continue
            if folder.lower() not in lookup:
                if root / split_dir / folder not in reported:
                    reported.add(root / split_dir / folder)
                    bad(
                        root / split_dir / folder,
                        f"unknown class folder '{folder}' (expected one of {', '.join(CLASS_NAMES)})",
                    )
                continue
            m = _PREFIX.match(name)
            if m:
                split = _PREFIX_SPLIT[m.group(1).lower()]
            manifest.add(path, lookup[folder.lower()], str(rel), str(path), split=split)
        if manifest.items and "val" not in manifest.splits:
            moved = carve_val(manifest, self.settings["val_fraction"], self.settings["seed"])
            manifest.info["val_carved_from_train"] = moved

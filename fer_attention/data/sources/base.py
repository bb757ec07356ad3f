"""What every file-based dataset source shares: finding the files, the manifest of faces to decode,
bad-input handling, last-k frame selection and carving a validation split.

A source does two cheap things and nothing else: ``files(root)`` lists the files the dataset consists of
(their names, sizes and times make the cache key), and ``index(root, class_names, bad)`` reads the labels
and returns a :class:`Manifest` (one entry per face: a file or decoded pixels, label, subject, split,
sequence, frame, face box). Decoding, face cropping, resizing and caching are the same for every dataset
and live in :mod:`fer_attention.data.cache` and :mod:`fer_attention.data.preprocess`.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fer_attention.errors import DataError
from fer_attention.schema import Choice

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".pgm", ".ppm", ".pnm", ".jp2"}
)


class OnBadFile(Choice):
    """``data.on_bad_file``: what :class:`BadInputs` does with a corrupt, unreadable or mislabelled input."""

    error = "error"
    skip = "skip"


ON_BAD_FILE = OnBadFile.values()
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


def natural_key(name: str) -> tuple:
    """Sort key that orders ``frame2`` before ``frame10``."""
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name))


def is_image(path: Path | str) -> bool:
    name = os.path.basename(str(path))
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def walk_files(root: Path, images_only: bool = True) -> list[Path]:
    """Every (image) file under ``root``, hidden files and folders left out, sorted by path."""
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith("."):
                continue
            if images_only and not is_image(name):
                continue
            out.append(Path(dirpath) / name)
    out.sort()
    return out


class BadInputs:
    """``data.on_bad_file``: ``error`` raises :class:`DataError` naming the file and the reason at the first
    bad input; ``skip`` records ``(file, reason)`` and goes on."""

    def __init__(self, mode: str = "error") -> None:
        if mode not in ON_BAD_FILE:
            raise DataError(f"data.on_bad_file='{mode}' is not one of {', '.join(ON_BAD_FILE)}")
        self.mode = mode
        self.items: list[tuple[str, str]] = []

    def __call__(self, where: Path | str, reason: str) -> None:
        if self.mode == "error":
            raise DataError(f"{where}: {reason}")
        self.items.append((str(where), reason))


@dataclass
class Manifest:
    """The faces a dataset consists of, before decoding. ``items`` are file paths or uint8 arrays."""

    items: list[Any] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)
    splits: list[str | None] = field(default_factory=list)
    sequences: list[str | None] = field(default_factory=list)
    frames: list[int | None] = field(default_factory=list)
    boxes: list[tuple[float, float, float, float] | None] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    # faces the protocol leaves out (not errors): reason -> count
    excluded: Counter = field(default_factory=Counter)
    info: dict[str, Any] = field(default_factory=dict)

    def add(
        self,
        item: Any,
        label: int,
        subject: str,
        source: str,
        split: str | None = None,
        sequence: str | None = None,
        frame: int | None = None,
        box: tuple[float, float, float, float] | None = None,
    ) -> None:
        self.items.append(item)
        self.labels.append(int(label))
        self.subjects.append(str(subject))
        self.sources.append(str(source))
        self.splits.append(split)
        self.sequences.append(sequence)
        self.frames.append(frame)
        self.boxes.append(box)

    def exclude(self, reason: str, count: int = 1) -> None:
        self.excluded[reason] += count

    def __len__(self) -> int:
        return len(self.items)

    def column(self, name: str, dtype=None) -> np.ndarray | None:
        values = getattr(self, name)
        if not values or all(v is None for v in values):
            return None
        if any(v is None for v in values):
            raise DataError(f"internal: column {name} is only partly set")
        return np.asarray(values, dtype=dtype)


class FileSource:
    """Base of the sources that read a dataset from files under ``data.root``.

    Subclasses set ``name`` and implement ``files``, ``index`` and ``class_names_for``; they keep every
    constructor argument in ``self.settings`` (part of the cache key). A source only lists and indexes:
    :func:`fer_attention.data.cache.load_faces` decodes (or reads from the cache) the faces of one."""

    name = "files"
    #: the dataset's own layouts, for error messages
    layouts_help = ""
    #: whether the dataset has its own face boxes (``data.face_crop=box``)
    has_boxes = False

    def __init__(self, **settings: Any) -> None:
        self.settings: dict[str, Any] = dict(settings)
        self._walk_memo: dict[str, list[Path]] = {}

    # ----- what subclasses provide -----
    def class_names_for(self, configured: Sequence[str]) -> tuple[str, ...]:
        """The class names this source produces (fixed ones; or ``configured`` for generic sources)."""
        return tuple(configured)

    def files(self, root: Path) -> list[Path]:
        """The files the dataset consists of (for the cache key). Default: every image under ``root``."""
        return self.walk(root)

    def index(self, root: Path, class_names: Sequence[str], bad: BadInputs) -> Manifest:
        raise NotImplementedError

    def default_face_crop(self, root: Path) -> str:
        """The face crop ``data.face_crop=auto`` means for this dataset and layout."""
        return "none"

    # ----- shared -----
    def walk(self, root: Path, images_only: bool = True) -> list[Path]:
        key = f"{root}|{images_only}"
        if key not in self._walk_memo:
            self._walk_memo[key] = walk_files(root, images_only)
        return self._walk_memo[key]

    def resolve_root(self, root: str | os.PathLike | None) -> Path:
        if root is None or str(root) in ("", "???"):
            raise DataError(
                f"data.root is not set: pass data.root=/path/to/{self.name} (see docs/datasets.md)"
            )
        path = Path(str(root)).expanduser()
        if not path.exists():
            raise DataError(f"{path}: no such file or directory (data.root)")
        return path.resolve()

    def check_class_names(self, class_names: Sequence[str]) -> tuple[str, ...]:
        expected = self.class_names_for(class_names)
        if tuple(class_names) != expected:
            settings = ", ".join(f"{k}={v}" for k, v in self.settings.items())
            raise DataError(
                f"data.class_names={list(class_names)} but dataset '{self.name}' ({settings}) has "
                f"{list(expected)} (set data.class_names to match)"
            )
        return expected

    def empty_error(self, root: Path) -> DataError:
        hint = f"; expected {self.layouts_help}" if self.layouts_help else ""
        return DataError(f"{root}: no images found for dataset '{self.name}'{hint}")


def class_lookup(names: Iterable[str]) -> dict[str, int]:
    """Case-insensitive folder-name -> class-index lookup."""
    return {str(n).lower(): i for i, n in enumerate(names)}


def last_k_frames(frames: Sequence[Path], k: int | None) -> list[tuple[int, Path]]:
    """The last ``k`` of a sequence's frames (naturally sorted) with their positions; all if k is None/0."""
    ordered = sorted(frames, key=lambda p: natural_key(p.name))
    start = 0 if not k or k <= 0 else max(0, len(ordered) - k)
    return [(i, ordered[i]) for i in range(start, len(ordered))]


def carve_val(manifest: Manifest, fraction: float, seed: int) -> int:
    """Move a ``fraction`` of the manifest's train faces to ``val``: stratified by label and grouped by
    subject (whole subjects move), reproducible from ``seed``. Returns the number moved."""
    train = np.flatnonzero(np.asarray([s == "train" for s in manifest.splits]))
    if len(train) == 0 or fraction <= 0:
        return 0
    if not 0 < fraction < 1:
        raise DataError(f"data.source.val_fraction={fraction} must be in (0, 1)")
    labels = np.asarray(manifest.labels)[train]
    subjects = np.asarray(manifest.subjects)[train]
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    if len(np.unique(subjects)) == len(subjects):
        # one face per subject: a plain stratified draw per class
        for c in np.unique(labels):
            idx = np.flatnonzero(labels == c)
            n = int(round(len(idx) * fraction))
            if len(idx) >= 2:
                n = min(max(n, 1), len(idx) - 1)
                chosen.extend(rng.choice(idx, size=n, replace=False).tolist())
    else:
        from sklearn.model_selection import StratifiedGroupKFold

        n_splits = max(2, int(round(1 / fraction)))
        n_splits = min(n_splits, len(np.unique(subjects)))
        if n_splits < 2:
            return 0
        sgkf = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        _, va = next(sgkf.split(np.zeros(len(labels)), labels, subjects))
        chosen = va.tolist()
    for i in chosen:
        manifest.splits[train[i]] = "val"
    return len(chosen)


def index_class_folders(
    manifest: Manifest,
    base: Path,
    files: Sequence[Path],
    lookup: dict[str, int],
    bad: BadInputs,
    subject_of,
    split: str | None = None,
    skip_folders: Iterable[str] = (),
    expected: str = "",
) -> None:
    """Add every image in ``files`` below ``base/<class folder>/`` (nested folders allowed) to the manifest.

    ``subject_of(path)`` returns the subject (or raises ``ValueError`` with a reason); folders named in
    ``skip_folders`` are left out by the protocol; unknown folders are bad inputs (reported once each)."""
    skip = {s.lower() for s in skip_folders}
    reported: set[str] = set()
    for path in files:
        try:
            rel = path.relative_to(base)
        except ValueError:
            continue
        if len(rel.parts) < 2:
            bad(path, f"image is not inside a class folder of {base}")
            continue
        folder = rel.parts[0]
        key = folder.lower()
        if key in skip:
            manifest.exclude(f"class folder '{folder}' not used")
            continue
        if key not in lookup:
            if folder not in reported:
                reported.add(folder)
                count = sum(1 for p in files if p.parent == base / folder or base / folder in p.parents)
                bad(
                    base / folder,
                    f"unknown class folder '{folder}' ({count} images; expected one of {expected or ', '.join(lookup)})",
                )
            continue
        try:
            subject = subject_of(path)
        except ValueError as err:
            bad(path, str(err))
            continue
        manifest.add(path, lookup[key], subject, str(path), split=split)

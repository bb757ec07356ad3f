"""Any face set sorted into class folders: ``<root>/<class>/*`` or ``<root>/<split>/<class>/*``.

- Classes: ``data.class_names`` (required; ``fer-data action=summary data=folder data.root=...`` lists
  the folders it finds). Folder names match them case-insensitively; ``folders`` gives other folder names
  in class order (``folders: ['1', '2', ...]`` for folders named by code). Images may sit in nested
  folders below the class folder; files that are not images are ignored.
- Splits: with ``train/``, ``val/`` (or ``valid/``, ``validation/``) and ``test/`` sub-folders the dataset
  has a fixed split (``data.protocol=auto`` uses it); without ``val/``, validation is carved from train
  (``val_fraction``, ``seed``, by subject). Without split folders, ``protocol=auto`` means subject k-fold.
- Subjects: each image is its own subject, unless ``subject_regex`` is set: it is searched in the file
  name and its first group (or the whole match) is the subject, e.g. ``'^(S\\d+)_'`` for ``S005_001.png``.
  A file name it does not match is a bad input (never a silently leaked subject).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from fer_attention.data.sources.base import (
    SPLIT_ALIASES,
    BadInputs,
    FileSource,
    Manifest,
    carve_val,
    index_class_folders,
)
from fer_attention.errors import DataError


def split_folders(root: Path) -> dict[str, Path]:
    """``{"train": root/train, ...}`` for the split sub-folders of ``root`` (case-insensitive names)."""
    out: dict[str, Path] = {}
    if root.is_dir():
        for child in sorted(root.iterdir()):
            split = SPLIT_ALIASES.get(child.name.lower())
            if child.is_dir() and split is not None and split not in out:
                out[split] = child
    return out


def discover_classes(root: Path) -> list[str]:
    """The class folder names under ``root`` (or under its split folders), sorted."""
    tops = list(split_folders(root).values()) or [root]
    names = {
        c.name
        for top in tops
        if top.is_dir()
        for c in top.iterdir()
        if c.is_dir() and not c.name.startswith(".")
    }
    return sorted(names, key=str.lower)


class FolderSource(FileSource):
    name = "folder"
    layouts_help = "<root>/<class>/<images> or <root>/{train,val,test}/<class>/<images>"

    @staticmethod
    def discover_classes(root: Path) -> list[str]:
        """The class folder names found under ``root``: what ``data.class_names`` could be."""
        return discover_classes(root)

    def __init__(
        self,
        subject_regex: str | None = None,
        folders: Sequence[str] | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        if subject_regex:
            try:
                re.compile(subject_regex)
            except re.error as err:
                raise DataError(
                    f"data.source.subject_regex={subject_regex!r} is not a valid regular expression ({err})"
                ) from None
        super().__init__(
            subject_regex=subject_regex or None,
            folders=None if folders is None else [str(f) for f in folders],
            val_fraction=float(val_fraction),
            seed=int(seed),
        )

    def index(self, root: Path, class_names, bad: BadInputs) -> Manifest:
        if not root.is_dir():
            raise DataError(f"{root}: not a folder; expected {self.layouts_help}")
        folders = self.settings["folders"] or list(class_names)
        if len(folders) != len(class_names):
            raise DataError(f"data.source.folders has {len(folders)} names for {len(class_names)} classes")
        lookup = {str(f).lower(): i for i, f in enumerate(folders)}
        regex = re.compile(self.settings["subject_regex"]) if self.settings["subject_regex"] else None

        def subject_of(path: Path) -> str:
            if regex is None:
                return str(path.relative_to(root))
            m = regex.search(path.name)
            if not m:
                raise ValueError(f"file name does not match data.source.subject_regex={regex.pattern!r}")
            return m.group(1) if m.groups() else m.group(0)

        splits = split_folders(root)
        files = self.walk(root)
        manifest = Manifest(info={"layout": "split folders" if splits else "class folders"})
        if splits:
            for split, folder in splits.items():
                inside = [p for p in files if p.is_relative_to(folder)]
                index_class_folders(
                    manifest,
                    folder,
                    inside,
                    lookup,
                    bad,
                    subject_of,
                    split=split,
                    expected=", ".join(folders),
                )
            outside = [p for p in files if not any(p.is_relative_to(f) for f in splits.values())]
            for path in outside:
                bad(path, f"image outside the split folders ({', '.join(f.name for f in splits.values())})")
            if "train" not in splits:
                raise DataError(
                    f"{root}: split folders {sorted(f.name for f in splits.values())} but no train/"
                )
            if manifest.items and "val" not in splits:
                manifest.info["val_carved_from_train"] = carve_val(
                    manifest, self.settings["val_fraction"], self.settings["seed"]
                )
        else:
            index_class_folders(manifest, root, files, lookup, bad, subject_of, expected=", ".join(folders))
        return manifest

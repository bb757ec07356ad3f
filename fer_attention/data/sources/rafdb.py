"""RAF-DB basic (Li et al., CVPR 2017): 15,339 in-the-wild faces, 7 classes, 12,271 train / 3,068 test.

Layouts, recognised from ``data.root`` (the ``basic`` folder of the release, or the folder holding it):

- the release: ``EmoLabel/list_patition_label.txt`` (lines ``train_00001.jpg 5``) with
  ``Image/aligned/train_00001_aligned.jpg`` (``aligned: true``, 100x100 aligned faces) or
  ``Image/original/train_00001.jpg`` (``aligned: false``);
- the common re-packaging ``train/<1..7>/*.jpg`` + ``test/<1..7>/*.jpg`` (folders named by label code).

Classes, in RAF-DB's code order (1-7): surprise, fear, disgust, happiness, sadness, anger, neutral.
Split: train_* = train, test_* = test; validation is carved from train: ``val_fraction`` (0.1) of each
class, drawn with ``seed`` (0), so every run with the same settings uses the same validation faces.
Each image is its own subject. ``data.face_crop=auto`` means ``none`` with aligned faces, ``haar`` with
the original images.
"""

from __future__ import annotations

from pathlib import Path

from fer_attention.data.sources.base import BadInputs, FileSource, Manifest, carve_val, index_class_folders
from fer_attention.errors import DataError

CLASS_NAMES: tuple[str, ...] = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
LABEL_FILE = Path("EmoLabel") / "list_patition_label.txt"


class RAFDBSource(FileSource):
    name = "rafdb"
    layouts_help = (
        "EmoLabel/list_patition_label.txt + Image/aligned/*_aligned.jpg, or train/<1..7>/ + test/<1..7>/"
    )

    def __init__(self, aligned: bool = True, val_fraction: float = 0.1, seed: int = 0) -> None:
        super().__init__(aligned=bool(aligned), val_fraction=float(val_fraction), seed=int(seed))

    def class_names_for(self, configured):
        return CLASS_NAMES

    def base(self, root: Path) -> tuple[Path, str]:
        for base in (root, root / "basic"):
            if (base / LABEL_FILE).is_file():
                return base, "release"
        if (root / "train").is_dir() and (root / "test").is_dir():
            return root, "folders"
        if (root / "DATASET" / "train").is_dir():
            return root / "DATASET", "folders"
        raise DataError(f"{root}: not a RAF-DB layout; expected {self.layouts_help}")

    def image_dir(self, base: Path) -> Path:
        return base / "Image" / ("aligned" if self.settings["aligned"] else "original")

    def default_face_crop(self, root: Path) -> str:
        base, layout = self.base(root)
        return "haar" if layout == "release" and not self.settings["aligned"] else "none"

    def files(self, root: Path) -> list[Path]:
        base, layout = self.base(root)
        if layout == "release":
            return [base / LABEL_FILE, *self.walk(self.image_dir(base))]
        return self.walk(base)

    def index(self, root: Path, class_names, bad: BadInputs) -> Manifest:
        base, layout = self.base(root)
        manifest = Manifest(info={"layout": layout})
        if layout == "release":
            self._index_release(base, manifest, bad)
        else:
            lookup = {str(code): code - 1 for code in range(1, len(CLASS_NAMES) + 1)}
            files = self.walk(base)
            for split in ("train", "test"):
                index_class_folders(
                    manifest,
                    base / split,
                    [p for p in files if p.is_relative_to(base / split)],
                    lookup,
                    bad,
                    subject_of=lambda p: str(p.relative_to(base)),
                    split=split,
                    expected="1-7",
                )
        if manifest.items:
            manifest.info["val_carved_from_train"] = carve_val(
                manifest, self.settings["val_fraction"], self.settings["seed"]
            )
        return manifest

    def _index_release(self, base: Path, manifest: Manifest, bad: BadInputs) -> None:
        label_file = base / LABEL_FILE
        image_dir = self.image_dir(base)
        present = {p.name for p in self.walk(image_dir)}
        for line_no, line in enumerate(label_file.read_text(encoding="utf-8-sig").splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{label_file}:{line_no}"
            parts = line.split()
            if len(parts) != 2:
                bad(where, f"expected '<image> <label 1-7>', got {line.strip()!r}")
                continue
            name, code = parts
            if not code.isdigit() or not 1 <= int(code) <= len(CLASS_NAMES):
                bad(where, f"unknown label code '{code}' (expected 1-7)")
                continue
            split = "train" if name.startswith("train") else "test" if name.startswith("test") else None
            if split is None:
                bad(where, f"image name '{name}' starts with neither train nor test")
                continue
            stem, ext = name.rsplit(".", 1) if "." in name else (name, "jpg")
            file_name = f"{stem}_aligned.{ext}" if self.settings["aligned"] else name
            if file_name not in present:
                bad(image_dir / file_name, f"listed in {label_file.name} line {line_no} but missing")
                continue
            path = image_dir / file_name
            manifest.add(path, int(code) - 1, stem, str(path), split=split)

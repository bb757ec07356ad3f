"""AffectNet (Mollahosseini et al., 2017), the manually annotated part of the CSV release.

Layout (``data.root``): ``Manually_Annotated_file_lists/{training,validation}.csv`` with the columns
``subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal``,
and the images under ``Manually_Annotated_Images/<subDirectory_filePath>`` (``image_dir``).

Classes, in AffectNet's code order: neutral, happy, sad, surprise, fear, disgust, anger, contempt
(``classes: 8``, ``conf/data/affectnet8.yaml``); ``classes: 7`` (``conf/data/affectnet.yaml``) leaves
contempt out. Codes 8-10 (none, uncertain, no face) are not expressions and are left out. Split: the
validation CSV is the test set (AffectNet's test set is not public); validation is carved from training:
``val_fraction`` of each class, drawn with ``seed``. Each image is its own subject.
``data.face_crop=auto`` means ``box``: the CSV's face box, squared around its centre.

The cache key uses the two CSV files and the image sub-folders (not all 400k images): replacing an image
in place without touching its folder is not noticed; ``fer-data action=prepare rebuild=true`` rebuilds.
"""

from __future__ import annotations

import csv
from pathlib import Path

from fer_attention.data.sources.base import BadInputs, FileSource, Manifest, carve_val
from fer_attention.errors import DataError

CLASS_NAMES_8: tuple[str, ...] = (
    "neutral",
    "happy",
    "sad",
    "surprise",
    "fear",
    "disgust",
    "anger",
    "contempt",
)
CLASS_NAMES_7: tuple[str, ...] = CLASS_NAMES_8[:7]
NOT_EXPRESSIONS = {8: "none", 9: "uncertain", 10: "no face"}
LISTS = Path("Manually_Annotated_file_lists")
CSV_SPLITS = {"training.csv": "train", "validation.csv": "test"}
COLUMNS = ("subdirectory_filepath", "face_x", "face_y", "face_width", "face_height", "expression")


class AffectNetSource(FileSource):
    name = "affectnet"
    layouts_help = "Manually_Annotated_file_lists/{training,validation}.csv + Manually_Annotated_Images/"
    has_boxes = True

    def __init__(
        self,
        classes: int = 7,
        val_fraction: float = 0.05,
        seed: int = 0,
        image_dir: str = "Manually_Annotated_Images",
    ) -> None:
        if classes not in (7, 8):
            raise DataError(f"data.source.classes={classes} must be 7 (without contempt) or 8")
        super().__init__(
            classes=classes, val_fraction=float(val_fraction), seed=int(seed), image_dir=str(image_dir)
        )

    def class_names_for(self, configured):
        return CLASS_NAMES_8 if self.settings["classes"] == 8 else CLASS_NAMES_7

    def default_face_crop(self, root: Path) -> str:
        return "box"

    def lists(self, root: Path) -> dict[str, Path]:
        found = {name: root / LISTS / name for name in CSV_SPLITS if (root / LISTS / name).is_file()}
        if "training.csv" not in found:
            raise DataError(f"{root}: no {LISTS / 'training.csv'}; expected {self.layouts_help}")
        return found

    def images(self, root: Path) -> Path:
        folder = Path(self.settings["image_dir"])
        folder = folder if folder.is_absolute() else root / folder
        if not folder.is_dir():
            raise DataError(f"{folder}: no such folder (data.source.image_dir)")
        return folder

    def files(self, root: Path) -> list[Path]:
        images = self.images(root)
        subdirs = sorted(p for p in images.iterdir() if p.is_dir())
        return [*self.lists(root).values(), *subdirs]

    def index(self, root: Path, class_names, bad: BadInputs) -> Manifest:
        images = self.images(root)
        manifest = Manifest()
        n_classes = len(class_names)
        for name, path in self.lists(root).items():
            split = CSV_SPLITS[name]
            with open(path, newline="", encoding="utf-8-sig") as fh:
                reader = csv.reader(fh)
                header = [h.strip().lower() for h in next(reader, [])]
                missing = [c for c in COLUMNS if c not in header]
                if missing:
                    raise DataError(f"{path}: not an AffectNet file list (no column {', '.join(missing)})")
                ci = {c: header.index(c) for c in COLUMNS}
                for fields in reader:
                    if not fields:
                        continue
                    where = f"{path}:{reader.line_num}"
                    try:
                        rel = fields[ci["subdirectory_filepath"]].strip()
                        code = int(float(fields[ci["expression"]]))
                        box = tuple(
                            float(fields[ci[c]]) for c in ("face_x", "face_y", "face_width", "face_height")
                        )
                    except (ValueError, IndexError):
                        bad(where, "expected a file path, a face box and an integer expression code")
                        continue
                    if code in NOT_EXPRESSIONS:
                        manifest.exclude(f"expression {code} ({NOT_EXPRESSIONS[code]})")
                        continue
                    if not 0 <= code < len(CLASS_NAMES_8):
                        bad(where, f"unknown expression code {code} (expected 0-10)")
                        continue
                    if code >= n_classes:
                        manifest.exclude(f"{CLASS_NAMES_8[code]} not among the classes")
                        continue
                    if box[2] <= 0 or box[3] <= 0:
                        bad(where, f"face box {box} has no area")
                        continue
                    image = images / rel
                    manifest.add(image, code, rel, str(image), split=split, box=box)
        if manifest.items:
            manifest.info["val_carved_from_train"] = carve_val(
                manifest, self.settings["val_fraction"], self.settings["seed"]
            )
        return manifest

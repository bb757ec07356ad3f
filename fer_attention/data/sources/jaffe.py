"""JAFFE (Lyons et al., 1998): 213 posed 256x256 grayscale images of 10 Japanese women.

Layout: TIFFs named ``<subject>.<code><repeat>.<number>.tiff`` (``KA.AN1.39.tiff``), in one flat folder
or sorted into subfolders (the code in the file name is the label either way; folder names are ignored).
Codes: AN angry, DI disgust, FE fear, HA happy, NE neutral, SA sad, SU surprise; classes are in that
order; ``classes: 6`` leaves neutral out. Subject: the two-letter prefix. ``data.face_crop=auto`` means
``haar``. Protocol: subject-independent stratified 10-fold (one subject per fold).
"""

from __future__ import annotations

import re
from pathlib import Path

from fer_attention.data.sources.base import BadInputs, FileSource, Manifest
from fer_attention.errors import DataError

CODES: dict[str, str] = {
    "AN": "angry",
    "DI": "disgust",
    "FE": "fear",
    "HA": "happy",
    "NE": "neutral",
    "SA": "sad",
    "SU": "surprise",
}
CLASS_NAMES_7: tuple[str, ...] = tuple(CODES.values())
CLASS_NAMES_6: tuple[str, ...] = tuple(n for n in CLASS_NAMES_7 if n != "neutral")
FILE_NAME = re.compile(r"^(?P<subject>[A-Za-z]+)\.(?P<code>[A-Za-z]+)(?P<repeat>\d*)\.(?P<number>\d+)$")


class JAFFESource(FileSource):
    name = "jaffe"
    layouts_help = "TIFFs named like KA.AN1.39.tiff (flat or in subfolders)"

    def __init__(self, classes: int = 7) -> None:
        if classes not in (6, 7):
            raise DataError(f"data.source.classes={classes} must be 7 (with neutral) or 6 (without)")
        super().__init__(classes=classes)

    def class_names_for(self, configured):
        return CLASS_NAMES_7 if self.settings["classes"] == 7 else CLASS_NAMES_6

    def default_face_crop(self, root: Path) -> str:
        return "haar"

    def files(self, root: Path) -> list[Path]:
        return [root] if root.is_file() else self.walk(root)

    def index(self, root: Path, class_names, bad: BadInputs) -> Manifest:
        if not root.is_dir():
            raise DataError(f"{root}: not a folder; expected {self.layouts_help}")
        manifest = Manifest()
        lookup = {n: i for i, n in enumerate(class_names)}
        for path in self.walk(root):
            m = FILE_NAME.match(path.stem)
            if not m:
                bad(
                    path,
                    "file name does not match JAFFE's <subject>.<code><n>.<number>.tiff (e.g. KA.AN1.39.tiff)",
                )
                continue
            code = m.group("code").upper()
            if code not in CODES:
                bad(path, f"unknown expression code '{code}' (expected one of {', '.join(CODES)})")
                continue
            name = CODES[code]
            if name not in lookup:
                manifest.exclude(f"{name} not among the classes")
                continue
            manifest.add(path, lookup[name], m.group("subject").upper(), str(path))
        return manifest

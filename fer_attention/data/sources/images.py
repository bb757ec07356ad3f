"""Unlabelled faces: every image file anywhere under ``data.root`` (for ``fer-pretrain``).

Any layout: flat, class folders, split folders, nested; folder names are not read as labels. Every face
gets the one pseudo-class ``face``; each file is its own subject. Files that are not images (by
extension) are ignored; images that cannot be decoded follow ``data.on_bad_file`` as for every dataset.
"""

from __future__ import annotations

from pathlib import Path

from fer_attention.data.sources.base import BadInputs, FileSource, Manifest
from fer_attention.errors import DataError

CLASS_NAMES: tuple[str, ...] = ("face",)


class ImageFolderSource(FileSource):
    name = "images"
    layouts_help = "image files (png, jpg, bmp, tiff, ...) anywhere under the folder"

    def __init__(self) -> None:
        super().__init__()

    def class_names_for(self, configured):
        return CLASS_NAMES

    def index(self, root: Path, class_names, bad: BadInputs) -> Manifest:
        if not root.is_dir():
            raise DataError(f"{root}: not a folder; expected {self.layouts_help}")
        manifest = Manifest(info={"layout": "image folder (unlabelled)"})
        for path in self.walk(root):
            manifest.add(path, 0, str(path.relative_to(root)), str(path))
        return manifest

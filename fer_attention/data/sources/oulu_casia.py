"""Oulu-CASIA NIR&VIS (Zhao et al., 2011): 80 subjects, 6 expressions, sequences from neutral to apex,
recorded with a visible-light (VL) and a near-infrared (NI) camera under Strong, Weak and Dark light.

Layout: ``OriginalImg/<VL|NI>/<Strong|Weak|Dark>/P###/<Expression>/*.jpeg``; ``data.root`` is the folder
holding ``OriginalImg`` (or ``OriginalImg`` itself). ``modality`` (VL) and ``illumination`` (Strong) pick
the sub-set; the last ``last_k`` (3) frames of each sequence take its label. Classes: anger, disgust,
fear, happiness, sadness, surprise (the folder names, case-insensitive). Subject: the ``P###`` folder.
``data.face_crop=auto`` means ``haar`` (the original frames show head and shoulders). Protocol:
subject-independent stratified 10-fold.
"""

from __future__ import annotations

from pathlib import Path

from fer_attention.data.sources.base import BadInputs, FileSource, Manifest, class_lookup
from fer_attention.data.sources.sequences import index_sequence_tree
from fer_attention.errors import DataError

CLASS_NAMES: tuple[str, ...] = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
MODALITIES = ("VL", "NI")
ILLUMINATIONS = ("Strong", "Weak", "Dark")


def _child(folder: Path, name: str) -> Path | None:
    """``folder/name`` matched case-insensitively."""
    if (folder / name).is_dir():
        return folder / name
    if folder.is_dir():
        for child in folder.iterdir():
            if child.is_dir() and child.name.lower() == name.lower():
                return child
    return None


class OuluCASIASource(FileSource):
    name = "oulu_casia"
    layouts_help = "OriginalImg/<VL|NI>/<Strong|Weak|Dark>/P###/<Expression>/*.jpeg"

    def __init__(self, modality: str = "VL", illumination: str = "Strong", last_k: int = 3) -> None:
        if str(modality).upper() not in MODALITIES:
            raise DataError(f"data.source.modality='{modality}' is not one of {', '.join(MODALITIES)}")
        if str(illumination).capitalize() not in ILLUMINATIONS:
            raise DataError(
                f"data.source.illumination='{illumination}' is not one of {', '.join(ILLUMINATIONS)}"
            )
        if not isinstance(last_k, int) or last_k < 1:
            raise DataError(f"data.source.last_k={last_k!r} must be an integer >= 1")
        super().__init__(
            modality=str(modality).upper(), illumination=str(illumination).capitalize(), last_k=last_k
        )

    def class_names_for(self, configured):
        return CLASS_NAMES

    def default_face_crop(self, root: Path) -> str:
        return "haar"

    def base(self, root: Path) -> Path:
        mod, ill = self.settings["modality"], self.settings["illumination"]
        for top in (_child(root, "OriginalImg"), root):
            if top is None:
                continue
            m = _child(top, mod)
            if m is not None:
                i = _child(m, ill)
                if i is not None:
                    return i
        raise DataError(f"{root}: no OriginalImg/{mod}/{ill}/ folder; expected {self.layouts_help}")

    def files(self, root: Path) -> list[Path]:
        return self.walk(self.base(root))

    def index(self, root: Path, class_names, bad: BadInputs) -> Manifest:
        base = self.base(root)
        manifest = Manifest(info={"subset": str(base.relative_to(root)) if base != root else "."})
        index_sequence_tree(
            manifest, base, self.walk(base), class_lookup(CLASS_NAMES), bad, self.settings["last_k"]
        )
        return manifest

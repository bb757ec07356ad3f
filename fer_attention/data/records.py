"""Decoded face datasets: images plus per-image label, subject, split and sequence information."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fer_attention.errors import DataError


def check_classes(class_names: Any, dataset: str | None = None) -> None:
    """The class names are set (one-line ValueError naming ``data.class_names``); their number is the class
    count."""
    if class_names is None or isinstance(class_names, str):
        where = f" for dataset '{dataset}'" if dataset else ""
        raise ValueError(f"data.class_names must be set{where} (e.g. 'data.class_names=[angry,happy,sad]')")


@dataclass
class FaceArrays:
    """A decoded dataset: uint8 grayscale faces ``[N, H, W]`` and one record per face.

    ``subjects`` groups faces for subject-independent splits; ``splits`` holds a fixed split name per
    face ("train", "val", "test") where the dataset defines one, else ``None``. ``targets`` (float32
    ``[N, classes]``, rows summing to 1) is each face's soft target where the dataset has one (FER+'s vote
    distribution), else ``None``; ``labels`` stay the hard labels. ``skipped`` lists the
    ``(file, reason)`` of bad inputs left out with ``data.on_bad_file=skip``; ``info`` holds what the
    source reports about itself (layout, rows excluded by the protocol, face-crop fallbacks, cache file).
    """

    images: np.ndarray
    labels: np.ndarray
    subjects: np.ndarray
    class_names: tuple[str, ...]
    splits: np.ndarray | None = None
    sequences: np.ndarray | None = None
    frames: np.ndarray | None = None
    sources: np.ndarray | None = None
    targets: np.ndarray | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.images)
        if n == 0:
            raise DataError("the dataset is empty: no faces were found")
        for name in ("labels", "subjects", "splits", "sequences", "frames", "sources", "targets"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"{name} has {len(value)} entries for {n} images")
        if self.images.dtype != np.uint8 or self.images.ndim != 3:
            raise ValueError(f"images must be uint8 [N, H, W], got {self.images.dtype} {self.images.shape}")
        if self.targets is not None and self.targets.shape != (n, len(self.class_names)):
            raise ValueError(f"targets must be [N, classes], got {self.targets.shape}")

    def __len__(self) -> int:
        return len(self.images)

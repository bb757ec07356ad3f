"""The built-in synthetic face set as a dataset source (see :mod:`fer_attention.data.synthetic`)."""

from __future__ import annotations

from collections.abc import Sequence

from fer_attention.data.records import FaceArrays
from fer_attention.data.synthetic import CLASS_NAMES, render_synthetic_faces


class SyntheticSource:
    """Renders the synthetic faces deterministically from ``seed``; ``root`` is ignored."""

    def __init__(
        self,
        num_subjects: int = 60,
        frames_per_sequence: int = 4,
        min_intensity: float = 0.5,
        nuisance: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.kwargs = dict(
            num_subjects=num_subjects,
            frames_per_sequence=frames_per_sequence,
            min_intensity=min_intensity,
            nuisance=nuisance,
            seed=seed,
        )

    def load(self, root: str | None, image_size: int, class_names: Sequence[str]) -> FaceArrays:
        if tuple(class_names) != CLASS_NAMES:
            raise ValueError(f"data.class_names must be {list(CLASS_NAMES)} for the synthetic set")
        faces = render_synthetic_faces(image_size=image_size, **self.kwargs)
        return FaceArrays(
            images=faces.images,
            labels=faces.labels,
            subjects=faces.subjects,
            class_names=faces.class_names,
            sequences=faces.sequences,
            frames=faces.frames,
        )

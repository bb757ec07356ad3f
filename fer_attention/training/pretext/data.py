"""The pretext's data: augmented views of unlabelled faces, and which faces it trains and watches on."""

from __future__ import annotations

import numpy as np
import torch

from fer_attention.data.dataset import FaceArrayDataset
from fer_attention.data.records import FaceArrays
from fer_attention.errors import DataError


class PretextViews(FaceArrayDataset):
    """Faces ``uint8 [N, H, W]`` -> ``float32 [1 + views, 1, H, W]`` in [0, 1]: the clean face, then
    ``views`` independently augmented copies of it (``transform``, albumentations)."""

    def __init__(
        self, images: np.ndarray, transform=None, views: int = 1, fixed_seed: int | None = None
    ) -> None:
        super().__init__(images, np.zeros(len(images), dtype=np.int64), transform)
        self.views = int(views)
        # validation: the same views every epoch (the augmentation reseeded per face from this seed)
        self.fixed_seed = fixed_seed

    def __getitem__(self, index: int) -> torch.Tensor:
        image = self.images[index]
        out = [image]
        if self.transform is not None:
            if self.fixed_seed is None:
                self._seed_transform()
            else:
                self.transform.set_random_seed((self.fixed_seed * 1_000_003 + index) % 2**32)
        for _ in range(self.views):
            out.append(image if self.transform is None else self.transform(image=image)["image"])
        stack = np.stack([np.ascontiguousarray(v) for v in out])
        return torch.from_numpy(stack).unsqueeze(1).float().div_(255.0)


def select_faces(
    faces: FaceArrays, splits: list[str], val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the faces the pretext trains on and of those it watches its loss on (labels unused).

    A dataset with a fixed split gives the faces of ``splits`` (e.g. FER2013's Training faces only, so
    its PublicTest and PrivateTest faces stay unseen) and its ``val`` faces; otherwise every face, with
    ``val_fraction`` of the subjects held out."""
    rng = np.random.default_rng(seed)
    if faces.splits is not None:
        train = np.flatnonzero(np.isin(faces.splits, list(splits)))
        val = np.flatnonzero(faces.splits == "val")
        val = np.setdiff1d(val, train)
        if len(train) and len(val):
            return train, val
        pool = train
    else:
        pool = np.arange(len(faces))
    if len(pool) == 0:
        raise DataError(f"no faces in the splits {list(splits)} (pretext splits)")
    subjects = np.unique(faces.subjects[pool])
    n_val = int(round(len(subjects) * val_fraction)) if len(subjects) > 1 else 0
    n_val = min(max(n_val, 1 if len(subjects) > 1 and val_fraction > 0 else 0), len(subjects) - 1)
    held = set(rng.choice(subjects, size=n_val, replace=False).tolist()) if n_val else set()
    in_val = np.asarray([s in held for s in faces.subjects[pool]], dtype=bool)
    return pool[~in_val], pool[in_val]

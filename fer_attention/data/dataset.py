"""Torch datasets over decoded uint8 face arrays."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import Dataset


class FaceArrayDataset(Dataset):
    """Faces ``uint8 [N, H, W]`` with labels; yields ``(float32 [1, H, W] in [0, 1], label)``, and with
    ``targets`` (float ``[N, classes]``, soft targets such as FER+'s vote distributions)
    ``(image, label, float32 target)``: the loss then uses the target, the metrics the label.

    ``transform`` (albumentations) is applied to the uint8 image, so augmentation happens before the
    network's LBP layer and the two never get out of step.
    """

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, transform=None, targets: np.ndarray | None = None
    ) -> None:
        self.images = images
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.targets = None if targets is None else torch.as_tensor(targets, dtype=torch.float32)
        self.transform = transform
        self._seeded_from: tuple[int, int] | None = None

    def _seed_transform(self) -> None:
        # albumentations keeps its own RNG: seed it from torch's per-process seed (different in every
        # DataLoader worker, and reset at every training epoch by the EpochSeed callback) so runs are
        # reproducible, resumed runs repeat the same augmentations, and workers don't repeat each other
        key = (os.getpid(), torch.initial_seed())
        if self._seeded_from != key:
            self.transform.set_random_seed(torch.initial_seed() % 2**32)
            self._seeded_from = key

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        image = self.images[index]
        if self.transform is not None:
            self._seed_transform()
            image = self.transform(image=image)["image"]
        x = torch.from_numpy(np.ascontiguousarray(image)).unsqueeze(0).float().div_(255.0)
        if self.targets is not None:
            return x, self.labels[index], self.targets[index]
        return x, self.labels[index]

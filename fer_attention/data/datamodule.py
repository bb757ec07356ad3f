"""The LightningDataModule shared by every face dataset."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import numpy as np
from hydra.utils import instantiate
from torch.utils.data import DataLoader

from fer_attention.data.augment import build_augmentation
from fer_attention.data.dataset import FaceArrayDataset
from fer_attention.data.records import FaceArrays
from fer_attention.data.splits import SPLIT_NAMES, fixed_split, subject_kfold_split

log = logging.getLogger(__name__)


class FaceDataModule(pl.LightningDataModule):
    """Loads a face dataset through its ``source`` (a config with ``_target_``), splits it by the
    dataset's fixed protocol or subject-independent k-fold, and serves train / val / test loaders.

    ``source`` is called as ``source.load(root=..., image_size=..., class_names=...)`` and returns
    :class:`FaceArrays`.
    """

    def __init__(
        self,
        name: str,
        source: dict[str, Any],
        class_names: Sequence[str],
        num_classes: int,
        image_size: int = 48,
        root: str | None = None,
        protocol: str = "kfold",
        num_folds: int = 10,
        fold: int = 0,
        split_seed: int = 0,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        augment: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if protocol not in ("fixed", "kfold"):
            raise ValueError(f"data.protocol='{protocol}' is not one of fixed, kfold")
        if len(class_names) != num_classes:
            raise ValueError(f"data.num_classes={num_classes} but data.class_names has {len(class_names)} names")
        self.name = name
        self.source_cfg = dict(source)
        self.class_names = tuple(class_names)
        self.num_classes = num_classes
        self.image_size = image_size
        self.root = root
        self.protocol = protocol
        self.num_folds = num_folds
        self.fold = fold
        self.split_seed = split_seed
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.augment = dict(augment or {})
        self.faces: FaceArrays | None = None
        self.split_indices: dict[str, np.ndarray] = {}
        self.datasets: dict[str, FaceArrayDataset] = {}

    def load(self) -> FaceArrays:
        """Decode the dataset (through the source, which may cache) and check its classes."""
        source = instantiate(self.source_cfg)
        faces = source.load(root=self.root, image_size=self.image_size, class_names=self.class_names)
        if tuple(faces.class_names) != self.class_names:
            raise ValueError(f"data.class_names={list(self.class_names)} but the source has {list(faces.class_names)}")
        return faces

    def setup(self, stage: str | None = None) -> None:
        if self.faces is not None:
            return
        faces = self.load()
        if self.protocol == "fixed":
            if faces.splits is None:
                raise ValueError(f"data.protocol=fixed but dataset '{self.name}' defines no fixed split; use kfold")
            self.split_indices = fixed_split(faces.splits)
        else:
            self.split_indices = subject_kfold_split(
                faces.labels, faces.subjects, self.num_folds, self.fold, self.split_seed
            )
        train_tf = build_augmentation(self.augment.get("train"))
        for split in SPLIT_NAMES:
            idx = self.split_indices[split]
            self.datasets[split] = FaceArrayDataset(
                faces.images[idx], faces.labels[idx], train_tf if split == "train" else None
            )
        self.faces = faces
        log.info(
            "data %s: %s faces, %s subjects; %s",
            self.name,
            len(faces),
            len(np.unique(faces.subjects)),
            ", ".join(f"{s} {len(i)}" for s, i in self.split_indices.items()),
        )

    def split_summary(self) -> dict[str, Any]:
        """Counts per split and class, and subjects per split (after ``setup``)."""
        assert self.faces is not None, "call setup() first"
        out: dict[str, Any] = {}
        for split, idx in self.split_indices.items():
            counts = np.bincount(self.faces.labels[idx], minlength=self.num_classes)
            out[split] = {
                "faces": int(len(idx)),
                "subjects": int(len(np.unique(self.faces.subjects[idx]))),
                "per_class": dict(zip(self.class_names, counts.tolist(), strict=True)),
            }
        return out

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size if split == "train" else self.eval_batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

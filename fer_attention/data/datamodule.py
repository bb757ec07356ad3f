"""The LightningDataModule shared by every face dataset."""

from __future__ import annotations

import logging
import os
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from hydra.utils import get_class, instantiate
from torch.utils.data import DataLoader

from fer_attention.data.augment import build_augmentation
from fer_attention.data.cache import load_faces
from fer_attention.data.dataset import FaceArrayDataset
from fer_attention.data.options import DataOptions, Protocol, Sampler, data_options
from fer_attention.data.records import FaceArrays
from fer_attention.data.samplers import EpochSampler, ShardedEpochSampler
from fer_attention.data.sources.base import FileSource
from fer_attention.data.sources.ferplus import TARGETS  # the one source with votes: the training targets
from fer_attention.data.splits import SPLIT_NAMES, fixed_split, subject_kfold_split
from fer_attention.errors import DataError

VOTE_DATASETS = "data=ferplus (FER2013Train/Valid/Test folders, or fer2013new.csv beside fer2013.csv)"

log = logging.getLogger(__name__)


def face_ids(faces: FaceArrays, index: np.ndarray, name: str, root: str | None) -> list[str]:
    """Names of the faces at ``index``: their source files relative to ``root`` (as given when outside it),
    or ``<name>:<index>`` when the faces have no files."""
    if faces.sources is None:
        return [f"{name}:{int(i)}" for i in index]
    base = os.path.abspath(root) if root else None
    out = []
    for i in index:
        src = str(faces.sources[i])
        if base and os.path.isabs(src) and os.path.commonpath([base, src]) == base:
            src = os.path.relpath(src, base)
        out.append(src)
    return out


def check_target(source: dict[str, Any], name: str) -> str:
    """``data.source.target``: ``label`` (the default, every dataset) or ``votes`` (train on the taggers'
    vote distributions: only a source with ``has_votes``). A ``+data.source.target=label`` on a dataset
    without votes is taken out of ``source`` (its source has no such setting). One line naming the key."""
    if "target" not in source:
        return "label"
    target = source["target"]
    if target not in TARGETS:
        raise ValueError(f"data.source.target='{target}' is not one of {', '.join(TARGETS)}")
    if not getattr(get_class(str(source["_target_"])), "has_votes", False):
        if target == "votes":
            raise ValueError(
                f"data.source.target=votes but dataset '{name}' has no vote counts; only {VOTE_DATASETS} "
                "has them: use data=ferplus or data.source.target=label"
            )
        del source["target"]
    return target


class FaceDataModule(pl.LightningDataModule):
    """Loads a face dataset through its ``source`` (a config with ``_target_``), splits it by the
    dataset's fixed protocol or subject-independent k-fold, and serves train / val / test loaders.

    ``source`` is called as ``source.load(root=..., image_size=..., class_names=...)`` and returns
    :class:`FaceArrays`. File-based sources (:class:`~fer_attention.data.sources.base.FileSource`) go
    through :func:`fer_attention.data.cache.load_faces` instead, which decodes with ``face_crop`` and
    ``on_bad_file`` and keeps the result in ``cache_dir`` (``None``: no cache).

    ``protocol``: ``fixed`` (the dataset's own train/val/test), ``kfold`` (subject-independent, fold
    ``fold`` of ``num_folds`` is the test set), ``auto`` (fixed when the dataset defines a split, else
    kfold). ``sampler: weighted`` draws training faces with inverse-class-frequency weights.

    ``source.target: votes`` (FER+): the training faces also yield their vote distribution, the loss's
    target; validation and test faces have the hard label only (:func:`check_target`).

    The class count is the number of ``class_names``; ``num_classes``, recorded beside them in data configs
    of checkpoints written before, must agree with it.
    """

    def __init__(self, **options: Any) -> None:
        """``options``: the keys of :class:`~fer_attention.data.options.DataOptions` (a ``conf/data`` config,
        which Hydra instantiates, or a checkpoint's record of one), checked against it into ``self.options``."""
        super().__init__()
        self.options: DataOptions = data_options(options)
        self.source_cfg = dict(self.options.source)
        self.target = check_target(self.source_cfg, self.name)
        self.class_names = tuple(self.options.class_names)
        self.num_classes = len(self.class_names)
        self.augment = dict(self.options.augment or {})
        self.faces: FaceArrays | None = None
        self.split_indices: dict[str, np.ndarray] = {}
        self.datasets: dict[str, FaceArrayDataset] = {}

    @property
    def name(self) -> str:
        """``data.name``: the dataset's name."""
        return self.options.name

    @property
    def root(self) -> str | None:
        """``data.root``: the dataset's folder (None for a source without files)."""
        return self.options.root

    @property
    def eval_batch_size(self) -> int:
        """``data.eval_batch_size``, or ``data.batch_size`` when it is null."""
        return self.options.eval_batch_size or self.options.batch_size

    def load(self, rebuild: bool = False) -> FaceArrays:
        """Decode the dataset (file sources: from / into the cache) and check its classes.

        ``rebuild`` decodes again even when a cache file matches (and overwrites it)."""
        source, opts = instantiate(self.source_cfg), self.options
        if isinstance(source, FileSource):
            faces = load_faces(
                source,
                opts.root,
                image_size=opts.image_size,
                class_names=self.class_names,
                face_crop=str(opts.face_crop),
                cache_dir=opts.cache_dir,
                on_bad_file=str(opts.on_bad_file),
                progress=opts.progress,
                min_face=opts.min_face,
                rebuild=rebuild,
            )
        else:
            if opts.face_crop not in ("auto", "none"):
                log.warning(
                    "data.face_crop=%s is ignored: dataset '%s' is not read from files",
                    opts.face_crop,
                    self.name,
                )
            faces = source.load(root=opts.root, image_size=opts.image_size, class_names=self.class_names)
        if tuple(faces.class_names) != self.class_names:
            raise ValueError(
                f"data.class_names={list(self.class_names)} but the source has {list(faces.class_names)}"
            )
        if len(faces) and int(faces.labels.max()) >= self.num_classes:
            raise DataError(
                f"dataset '{self.name}' has label {int(faces.labels.max())} for {self.num_classes} classes"
            )
        if faces.skipped:
            first, reason = faces.skipped[0]
            log.warning(
                "data %s: skipped %d bad input(s) (data.on_bad_file=skip), first: %s: %s",
                self.name,
                len(faces.skipped),
                first,
                reason,
            )
        return faces

    def resolved_protocol(self, faces: FaceArrays | None = None) -> str:
        """``fixed`` or ``kfold`` (``auto``: fixed when the dataset defines a split)."""
        if self.options.protocol != Protocol.auto:
            return str(self.options.protocol)
        faces = faces if faces is not None else self.faces
        return "fixed" if faces is not None and faces.splits is not None else "kfold"

    def split_faces(
        self, faces: FaceArrays, fold: int | None = None, allow_empty: bool = False
    ) -> dict[str, np.ndarray]:
        """Train / val / test indices of ``faces`` under this module's protocol (``fold`` for kfold); an
        empty fixed split is an error unless ``allow_empty``."""
        if self.resolved_protocol(faces) == "fixed":
            if faces.splits is None:
                raise ValueError(
                    f"data.protocol=fixed but dataset '{self.name}' defines no fixed split; use kfold"
                )
            return fixed_split(faces.splits, allow_empty=allow_empty)
        opts = self.options
        return subject_kfold_split(
            faces.labels, faces.subjects, opts.num_folds, opts.fold if fold is None else fold, opts.split_seed
        )

    def setup(self, stage: str | None = None) -> None:
        if self.faces is not None:
            return
        faces = self.load()
        self.split_indices = self.split_faces(faces)
        train_tf = build_augmentation(self.augment.get("train"))
        for split in SPLIT_NAMES:
            idx = self.split_indices[split]
            targets = self._soft_targets(faces, idx) if split == "train" else None
            self.datasets[split] = FaceArrayDataset(
                faces.images[idx], faces.labels[idx], train_tf if split == "train" else None, targets
            )
        self.faces = faces
        log.info(
            "data %s: %s faces, %s subjects; %s",
            self.name,
            len(faces),
            len(np.unique(faces.subjects)),
            ", ".join(f"{s} {len(i)}" for s, i in self.split_indices.items()),
        )

    def _soft_targets(self, faces: FaceArrays, idx: np.ndarray) -> np.ndarray | None:
        """The training faces' soft targets under ``data.source.target=votes``, else None."""
        if self.target != "votes":
            return None
        if faces.targets is None:
            raise DataError(
                f"data.source.target=votes but dataset '{self.name}' came without vote distributions"
            )
        return faces.targets[idx]

    def label_rules(self) -> dict[str, str]:
        """What metrics.json records of the labels: the training target (``label`` or ``votes``) and the
        rule of the evaluated (val / test) labels (FER+: ``plurality`` or ``majority``; else ``label``)."""
        info = self.faces.info if self.faces is not None else {}
        return {"train_target": self.target, "eval_label": str(info.get("eval_label", "label"))}

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

    def face_ids(self, split: str) -> list[str]:
        """Each face of ``split`` in loader order, named by its file relative to ``data.root`` (a source
        with no files: ``<dataset>:<index>``); what per-face predictions are paired by."""
        assert self.faces is not None, "call setup() first"
        return face_ids(self.faces, self.split_indices[split], self.name, self.root)

    def class_counts(self, split: str = "train") -> np.ndarray:
        """Faces per class in ``split`` (after ``setup``; calls it if needed)."""
        if self.faces is None:
            self.setup()
        return np.bincount(self.faces.labels[self.split_indices[split]], minlength=self.num_classes)

    def class_weights(self) -> list[float]:
        """Inverse class frequency over the training split, normalised to mean 1 over the classes present
        there (a class with no training face gets 0); for ``model.loss.class_weighted=true``."""
        counts = self.class_counts("train").astype(np.float64)
        present = counts > 0
        weights = np.zeros_like(counts)
        weights[present] = 1.0 / counts[present]
        weights[present] /= weights[present].mean()
        return weights.tolist()

    def _trainer_value(self, name: str, default: int) -> int:
        trainer = getattr(self, "trainer", None)
        return int(getattr(trainer, name, default)) if trainer is not None else default

    def train_sampler(self) -> EpochSampler | ShardedEpochSampler:
        """The training order: a shuffle (``data.sampler=weighted``: draws with replacement, each face with
        probability proportional to 1 / its class's training count) that depends only on the run seed and
        the epoch, so a run resumed from a checkpoint sees the same batches as one never interrupted.

        Under multi-process training each process gets its shard of that same order
        (:class:`ShardedEpochSampler`), so the processes' batches together are one process's batches."""
        weights = None
        if self.options.sampler == Sampler.weighted:
            labels = self.faces.labels[self.split_indices["train"]]
            counts = np.bincount(labels, minlength=self.num_classes).astype(np.float64)
            weights = torch.as_tensor(1.0 / counts[labels], dtype=torch.double)
        order = EpochSampler(
            len(self.datasets["train"]), epoch=self._trainer_value("current_epoch", 0), weights=weights
        )
        world_size = self._trainer_value("world_size", 1)
        if world_size > 1:
            return ShardedEpochSampler(order, world_size, self._trainer_value("global_rank", 0))
        return order

    def _pin_memory(self) -> bool:
        """``data.pin_memory``, or when it is null: on exactly when the trainer runs on a GPU."""
        if self.options.pin_memory is not None:
            return bool(self.options.pin_memory)
        trainer = getattr(self, "trainer", None)
        return trainer is not None and trainer.strategy.root_device.type == "cuda"

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        sampler = self.train_sampler() if split == "train" else None
        opts = self.options
        return DataLoader(
            self.datasets[split],
            batch_size=opts.batch_size if split == "train" else self.eval_batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            generator=sampler.loader_generator if sampler is not None else None,
            num_workers=opts.num_workers,
            pin_memory=self._pin_memory(),
            persistent_workers=opts.persistent_workers and opts.num_workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

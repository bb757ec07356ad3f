"""The data module's options, in one list: :class:`DataOptions` is the schema of the ``data`` config group
(registered in Hydra's ConfigStore by :mod:`fer_attention.config`) and what
:class:`~fer_attention.data.datamodule.FaceDataModule` keeps (``dm.options``); each field's default is the
module's, conf/data/shared/loader.yaml sets only what differs for a run of fer-train (the cache folder, the
evaluation batch, the training augmentation) and each dataset's config its own keys.

The choices are Enums, so that Hydra rejects a bad one while it composes the config: ``protocol`` and
``sampler`` here, ``face_crop`` and ``on_bad_file`` from the modules that implement them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fer_attention.data.cache import FaceCrop
from fer_attention.data.preprocess import MIN_FACE
from fer_attention.data.records import check_classes
from fer_attention.data.sources.base import OnBadFile
from fer_attention.schema import Choice, check_fields

__all__ = ["DataOptions", "FaceCrop", "OnBadFile", "Protocol", "Sampler", "data_options"]


class Protocol(Choice):
    """``data.protocol``: the dataset's own train/val/test (``fixed``), subject-independent k-fold
    (``kfold``), or fixed where the dataset defines a split, else k-fold (``auto``)."""

    fixed = "fixed"
    kfold = "kfold"
    auto = "auto"


class Sampler(Choice):
    """``data.sampler`` (null: a plain shuffle): ``weighted`` draws training faces with inverse class
    frequency weights."""

    weighted = "weighted"


@dataclass(kw_only=True)
class DataOptions:
    """The keys of a data config, each once (the order is that of the composed config and checkpoints).

    ``source`` is the dataset's own (its ``_target_`` and settings: listing and indexing its files); the class
    count is not a key: it is the number of ``class_names``.
    """

    _target_: str = "fer_attention.data.datamodule.FaceDataModule"
    # the dataset's name (logs, cache file names, metrics.json)
    name: str
    # the dataset's folder: required by a dataset read from files (its source says so when it is null)
    root: str | None = None
    source: dict[str, Any]
    # in label order; null only until set on the command line (data=folder)
    class_names: list[str] | None
    # faces are decoded to image_size x image_size grey pixels
    image_size: int = 48
    protocol: Protocol = Protocol.kfold
    # kfold: fold `fold` of `num_folds` (by subject) is the test set; validation is carved from the rest
    num_folds: int = 10
    fold: int = 0
    split_seed: int = 0
    batch_size: int = 64
    # null: batch_size
    eval_batch_size: int | None = None
    num_workers: int = 0
    # null: pinned host memory when the trainer runs on a GPU, off on CPU
    pin_memory: bool | None = None
    # keep the loader's worker processes between epochs (with num_workers > 0)
    persistent_workers: bool = False
    # decoded faces are cached here (one uint8 .npz per dataset + settings); null: decode on every run
    cache_dir: str | None = None
    # auto: what the dataset's layout needs (docs/datasets.md)
    face_crop: FaceCrop = FaceCrop.auto
    # haar: the smallest face the detector looks for, a fraction of the image's shorter side (fer-predict's
    # min_face: faces are found alike in training and in use)
    min_face: float = MIN_FACE
    # error: stop at the first corrupt / unreadable / mislabelled input, naming it; skip: leave it out, list it
    on_bad_file: OnBadFile = OnBadFile.error
    sampler: Sampler | None = None
    # a progress bar while decoding (the first run; later runs read the cache)
    progress: bool = True
    # training augmentation ({train: [albumentations transforms]}): the top-level `augment` group
    augment: Any = None


def data_options(values: Mapping[str, Any]) -> DataOptions:
    """``values`` (a data config: composed, or recorded by a checkpoint with its ``_target_``) as
    :class:`DataOptions`, checked against it. ValueError in one line naming ``data.<key>``."""
    values = {str(k): v for k, v in values.items()}
    check_fields(DataOptions, values, "data")
    missing = [name for name in ("name", "source", "class_names") if name not in values]
    if missing:
        raise ValueError(
            f"data.{missing[0]} is required (a data config names its dataset, source and classes)"
        )
    options = DataOptions(**values)
    check_classes(options.class_names, options.name)
    return options

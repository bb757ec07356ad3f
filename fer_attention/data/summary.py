"""What `fer-data` reports of a dataset: decode and cache it (``prepare``), or summarise its counts, its fixed
split or every fold, the splits that came out empty and the inputs it skipped (``summary``)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from fer_attention.data.records import FaceArrays
from fer_attention.data.splits import SPLIT_NAMES
from fer_attention.errors import ConfigError

log = logging.getLogger(__name__)


def _counts(faces: FaceArrays, idx: np.ndarray, class_names: tuple[str, ...]) -> dict[str, Any]:
    counts = np.bincount(faces.labels[idx], minlength=len(class_names))
    return {
        "faces": int(len(idx)),
        "subjects": int(len(np.unique(faces.subjects[idx]))),
        "per_class": dict(zip(class_names, counts.tolist(), strict=True)),
    }


def _overlap(faces: FaceArrays, split: dict[str, np.ndarray]) -> list[str]:
    """Subjects found in two of train / val / test (should be none)."""
    sets = {name: set(faces.subjects[idx].tolist()) for name, idx in split.items()}
    shared = (sets["train"] & sets["val"]) | (sets["train"] & sets["test"]) | (sets["val"] & sets["test"])
    return sorted(map(str, shared))


def summarize(dm, faces: FaceArrays, max_skipped: int = 200) -> dict[str, Any]:
    """The JSON summary of a loaded dataset: counts, the fixed split or every fold, the splits with no
    face (``empty_splits``: e.g. a partial copy without PrivateTest; each is also logged), skipped inputs."""
    names = dm.class_names
    out: dict[str, Any] = {
        "dataset": dm.name,
        "root": dm.root,
        "images": len(faces),
        "image_size": dm.options.image_size,
        "classes": dict(zip(names, np.bincount(faces.labels, minlength=len(names)).tolist(), strict=True)),
        "subjects": int(len(np.unique(faces.subjects))),
        "sequences": None if faces.sequences is None else int(len(np.unique(faces.sequences))),
    }
    protocol = dm.resolved_protocol(faces)
    out["protocol"] = protocol
    empty: list[str] = []
    if protocol == "fixed":
        split = dm.split_faces(faces, allow_empty=True)
        out["splits"] = {name: _counts(faces, split[name], names) for name in SPLIT_NAMES}
        out["subjects_in_two_splits"] = _overlap(faces, split)
        empty = [name for name in SPLIT_NAMES if not len(split[name])]
    else:
        out["num_folds"] = dm.options.num_folds
        folds, overlaps = [], []
        for fold in range(dm.options.num_folds):
            split = dm.split_faces(faces, fold=fold)
            folds.append({"fold": fold, **{name: _counts(faces, split[name], names) for name in SPLIT_NAMES}})
            overlaps += _overlap(faces, split)
            empty += [f"fold {fold} {name}" for name in SPLIT_NAMES if not len(split[name])]
        out["folds"] = folds
        out["subjects_in_two_splits"] = sorted(set(overlaps))
    out["empty_splits"] = empty
    for name in empty:
        log.warning("data %s: the %s split has no face (a partial copy of the dataset?)", dm.name, name)
    info = dict(faces.info)
    out["layout"] = info.pop("layout", None)
    out["excluded"] = info.pop("excluded", {})
    out["info"] = info
    out["skipped_count"] = len(faces.skipped)
    out["skipped"] = [{"file": f, "reason": r} for f, r in faces.skipped[:max_skipped]]
    return out


def discovered_classes(cfg: DictConfig) -> dict[str, Any] | None:
    """For a data config without class names (data=folder, data=sequences): the class folders its
    source finds under data.root, and the overrides that set them. None when the classes are set."""
    if OmegaConf.select(cfg, "data.class_names") is not None:
        return None
    root = OmegaConf.select(cfg, "data.root", default=None)
    if root is None:
        raise ConfigError("data.root is not set: pass data.root=/path/to/dataset")
    root = Path(str(root)).expanduser()
    target = OmegaConf.select(cfg, "data.source._target_", default=None)
    discover = getattr(get_class(str(target)), "discover_classes", None) if target else None
    if discover is None:
        raise ConfigError("data.class_names must be set")
    found = discover(root)
    return {
        "dataset": cfg.data.name,
        "root": str(root),
        "discovered_classes": found,
        "hint": f"data.class_names=[{','.join(found)}]",
    }


def prepare(dm, rebuild: bool = False) -> dict[str, Any]:
    """Decode and cache the datamodule's faces (``fer-data prepare``): what was cached, where, how fast."""
    if not dm.options.cache_dir:
        raise ConfigError("fer-data prepare needs data.cache_dir (or paths.cache_dir); it is null")
    start = time.perf_counter()
    faces = dm.load(rebuild=rebuild)
    return {
        "dataset": dm.name,
        "images": len(faces),
        "skipped_count": len(faces.skipped),
        "cache_file": faces.info.get("cache_file"),
        "cache_hit": faces.info.get("cache_hit"),
        "seconds": round(time.perf_counter() - start, 2),
    }


def summary(dm, max_skipped: int = 200) -> dict[str, Any]:
    """Load the datamodule's faces and summarise them (``fer-data summary``), with the seconds it took."""
    start = time.perf_counter()
    out = summarize(dm, dm.load(), max_skipped)
    out["seconds"] = round(time.perf_counter() - start, 2)
    return out

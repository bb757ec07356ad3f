"""`fer-data`: decode and cache a dataset (``prepare``) or print its counts, splits and folds (``summary``).

    fer-data prepare data=fer2013 data.root=/data/fer2013
    fer-data summary data=ckplus data.root=/data/CK+48

The first argument may name the action (``prepare`` / ``summary``); it is rewritten to ``action=...``
before Hydra reads the command line, so ``fer-data action=summary ...`` is the same. The config is
``conf/data_cli.yaml``: the same ``data`` group as ``fer-train``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from fer_attention.cli.common import run_task
from fer_attention.config import ConfigError, config_dir, validate_config
from fer_attention.data.records import FaceArrays
from fer_attention.data.splits import SPLIT_NAMES
from fer_attention.training.builders import build_datamodule

log = logging.getLogger("fer_attention")

ACTIONS = ("prepare", "summary")


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
    """The JSON summary of a loaded dataset: counts, the fixed split or every fold, skipped inputs."""
    names = dm.class_names
    out: dict[str, Any] = {
        "dataset": dm.name,
        "root": dm.root,
        "images": len(faces),
        "image_size": dm.image_size,
        "classes": dict(zip(names, np.bincount(faces.labels, minlength=len(names)).tolist(), strict=True)),
        "subjects": int(len(np.unique(faces.subjects))),
        "sequences": None if faces.sequences is None else int(len(np.unique(faces.sequences))),
    }
    protocol = dm.resolved_protocol(faces)
    out["protocol"] = protocol
    if protocol == "fixed":
        split = dm.split_faces(faces)
        out["splits"] = {name: _counts(faces, split[name], names) for name in SPLIT_NAMES}
        out["subjects_in_two_splits"] = _overlap(faces, split)
    else:
        out["num_folds"] = dm.num_folds
        folds, overlaps = [], []
        for fold in range(dm.num_folds):
            split = dm.split_faces(faces, fold=fold)
            folds.append({"fold": fold, **{name: _counts(faces, split[name], names) for name in SPLIT_NAMES}})
            overlaps += _overlap(faces, split)
        out["folds"] = folds
        out["subjects_in_two_splits"] = sorted(set(overlaps))
    info = dict(faces.info)
    out["layout"] = info.pop("layout", None)
    out["excluded"] = info.pop("excluded", {})
    out["info"] = info
    out["skipped_count"] = len(faces.skipped)
    out["skipped"] = [{"file": f, "reason": r} for f, r in faces.skipped[:max_skipped]]
    return out


def _discovered_classes(cfg: DictConfig) -> dict[str, Any] | None:
    """For data=folder / data=sequences without class names: the folder names found, and how to set them."""
    if (
        OmegaConf.select(cfg, "data.class_names") is not None
        and OmegaConf.select(cfg, "data.num_classes") is not None
    ):
        return None
    target = str(OmegaConf.select(cfg, "data.source._target_", default=""))
    root = OmegaConf.select(cfg, "data.root", default=None)
    if root is None:
        raise ConfigError("data.root is not set: pass data.root=/path/to/dataset")
    root = Path(str(root)).expanduser()
    if target.endswith("FolderSource"):
        from fer_attention.data.sources.folder import discover_classes

        found = discover_classes(root)
    elif target.endswith("SequenceFolderSource"):
        found = sorted(
            {e.name for s in root.iterdir() if s.is_dir() for e in s.iterdir() if e.is_dir()}, key=str.lower
        )
    else:
        raise ConfigError("data.class_names and data.num_classes must be set")
    return {
        "dataset": cfg.data.name,
        "root": str(root),
        "discovered_classes": found,
        "hint": f"data.class_names=[{','.join(found)}] data.num_classes={len(found)}",
    }


def run(cfg: DictConfig) -> dict[str, Any]:
    """The ``fer-data`` task: returns the summary (``summary``) or what was cached (``prepare``)."""
    action = cfg.get("action")
    if action not in ACTIONS:
        raise ConfigError(f"action={action!r} is not one of {', '.join(ACTIONS)}")
    validate_config(cfg)
    discovered = _discovered_classes(cfg)
    if discovered is not None:
        return discovered
    dm = build_datamodule(cfg.data)
    start = time.perf_counter()
    if action == "prepare":
        if not getattr(dm, "cache_dir", None):
            raise ConfigError("fer-data prepare needs data.cache_dir (or paths.cache_dir); it is null")
        faces = dm.load(rebuild=bool(cfg.get("rebuild", False)))
        return {
            "dataset": dm.name,
            "images": len(faces),
            "skipped_count": len(faces.skipped),
            "cache_file": faces.info.get("cache_file"),
            "cache_hit": faces.info.get("cache_hit"),
            "seconds": round(time.perf_counter() - start, 2),
        }
    faces = dm.load()
    out = summarize(dm, faces, int(cfg.get("max_skipped", 200)))
    out["seconds"] = round(time.perf_counter() - start, 2)
    return out


def _rewrite_argv(argv: list[str]) -> list[str]:
    """``fer-data summary a=b`` -> ``fer-data action=summary a=b``."""
    if len(argv) > 1 and argv[1] in ACTIONS:
        return [argv[0], f"action={argv[1]}", *argv[2:]]
    return argv


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="data_cli")
def _main(cfg: DictConfig) -> None:
    out = run_task(run, cfg)
    if out is None:
        return
    text = json.dumps(out, indent=2, default=str)
    if cfg.get("action") == "prepare" and "discovered_classes" not in out:
        hit = "already cached" if out.get("cache_hit") else "decoded and cached"
        print(f"{out['dataset']}: {out['images']} faces {hit} in {out['cache_file']} ({out['seconds']} s)")
        if out["skipped_count"]:
            print(f"skipped {out['skipped_count']} bad input(s); `fer-data summary ...` lists them")
        return
    print(text)
    if cfg.get("output"):
        Path(cfg.output).write_text(text + "\n")


def main() -> None:
    sys.argv = _rewrite_argv(sys.argv)
    _main()


if __name__ == "__main__":
    main()

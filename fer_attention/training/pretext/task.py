"""``fer-pretrain``'s task: check the pretext config, load the faces (labels ignored), fit the pretext and
write ``<run dir>/pretext.ckpt`` and metrics.json inside the shared run lifecycle."""

from __future__ import annotations

import logging
import time
from typing import Any

import lightning.pytorch as pl
import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict
from torch.utils.data import DataLoader

from fer_attention.callbacks.epoch_seed import EpochSeed
from fer_attention.config import validate_config
from fer_attention.data.augment import build_augmentation
from fer_attention.data.records import FaceArrays
from fer_attention.data.samplers import EpochSampler
from fer_attention.errors import ConfigError, DataError
from fer_attention.lbp import check_args as check_lbp_args
from fer_attention.runtime import configure_process, resolve_precision
from fer_attention.training.builders import (
    build_callbacks,
    build_datamodule,
    build_loggers,
    build_trainer,
    to_dict,
)
from fer_attention.training.lifecycle import Run, run_lifecycle
from fer_attention.training.pretext.data import PretextViews, select_faces
from fer_attention.training.pretext.module import PretextModule

log = logging.getLogger(__name__)

PRETEXT_FILE = "pretext.ckpt"


def check_pretext(cfg: DictConfig) -> None:
    """ConfigError (one line) for a pretext config that cannot work, before any data is loaded."""
    p = cfg.get("pretext") or {}
    hw, cw = float(p.get("histogram_weight", 0) or 0), float(p.get("contrastive_weight", 0) or 0)
    if hw < 0 or cw < 0 or hw + cw <= 0:
        raise ConfigError(
            f"pretext.histogram_weight={hw} and pretext.contrastive_weight={cw}: both >= 0, at least one > 0"
        )
    if hw > 0:
        _check_histogram_target(cfg, p)
    if cw > 0:
        modules = OmegaConf.select(cfg, "model.net.modules", default={}) or {}
        if not modules.get("lbp", True) or OmegaConf.select(cfg, "model.net.lbp.method") is None:
            raise ConfigError(
                "pretext.contrastive_weight > 0 aligns the image and LBP streams: it needs the LBP stream "
                "(not lbp=none or ablation=no_lbp/vgg16)"
            )
    temperature = p.get("temperature", 0.1)  # a number: the schema (PretextOptions) types it
    if temperature <= 0:
        raise ConfigError(f"pretext.temperature={temperature!r} must be a number > 0")
    if cfg.get("ckpt_path") == "last":
        raise ConfigError("ckpt_path=last: give fer-pretrain the file, <run dir>/checkpoints/last.ckpt")
    fraction = cfg.get("val_fraction", 0.05)
    if not isinstance(fraction, int | float) or not 0 <= fraction < 1:
        raise ConfigError(f"val_fraction={fraction!r} must be in [0, 1)")


def _check_histogram_target(cfg: DictConfig, p: Any) -> None:
    """The histogram pretext's target LBP variant and grid."""
    t = p.get("target_lbp") or {}
    method = t.get("method", "uniform")
    if method == "var":
        raise ConfigError("pretext.target_lbp.method=var has no codes to count; use uniform, circle, ...")
    try:
        check_lbp_args(method, t.get("P", 8), t.get("R", 1.0))
    except ValueError as err:
        raise ConfigError(f"pretext.target_{err}") from None
    grid = p.get("grid", 3)
    size = OmegaConf.select(cfg, "data.image_size", default=48)
    if not isinstance(grid, int) or not 1 <= grid <= size:
        raise ConfigError(f"pretext.grid={grid!r} must be an integer in 1..{size} (data.image_size)")


def _load_faces(data_cfg: dict[str, Any]) -> FaceArrays:
    """Decode the faces (labels kept but unused); an unreadable folder is one line naming the folder."""
    datamodule = build_datamodule(data_cfg)
    root = data_cfg.get("root")
    try:
        return datamodule.load()
    except DataError as err:
        text = str(err)
        if text.startswith("no usable images") and root:
            raise DataError(f"{root}: no readable images ({text})") from None
        raise


def _resume_path(ckpt_path: str | None) -> str | None:
    """``ckpt_path``: a pretext run's ``checkpoints/last.ckpt`` to continue (validate_config checked that
    it exists, check_pretext that it is a file, not ``last``)."""
    return None if ckpt_path in (None, "") else str(ckpt_path)


def _build_module(cfg: DictConfig, pretext_cfg: dict[str, Any]) -> PretextModule:
    """The network of ``cfg.model`` with the heads of ``pretext_cfg``."""
    model_cfg = to_dict(cfg.model)
    return PretextModule(
        net=model_cfg["net"],
        optimizer=model_cfg["optimizer"],
        scheduler=model_cfg.get("scheduler"),
        pretext=pretext_cfg,
        channels_last=bool(model_cfg.get("channels_last", False)),
    )


def _loaders(
    cfg: DictConfig, images: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray, augment: Any, views: int
) -> dict[str, DataLoader]:
    """``train_dataloaders`` (fresh views every epoch) and, with faces held out, ``val_dataloaders``."""
    train_set = PretextViews(images[train_idx], build_augmentation(augment), views)
    sampler = EpochSampler(len(train_set), seed=int(cfg.seed))
    batch_size = int(cfg.data.batch_size)
    loaders = {
        "train_dataloaders": DataLoader(
            train_set,
            batch_size=batch_size,
            sampler=sampler,
            generator=sampler.loader_generator,
            num_workers=int(cfg.data.num_workers),
            drop_last=len(train_set) > batch_size,  # InfoNCE wants full batches of negatives
        )
    }
    if len(val_idx):
        # fixed views for validation: the same augmentation draw every epoch (seeded per face)
        val_set = PretextViews(images[val_idx], build_augmentation(augment), views, fixed_seed=int(cfg.seed))
        loaders["val_dataloaders"] = DataLoader(
            val_set,
            batch_size=int(cfg.data.get("eval_batch_size") or batch_size),
            num_workers=int(cfg.data.num_workers),
        )
    return loaders


def _build_trainer(cfg: DictConfig) -> pl.Trainer:
    """The trainer with ``cfg.callbacks`` (and the per-epoch seed), the loggers and a precision the
    machine has (written back into ``cfg.trainer.precision``)."""
    callbacks = [*build_callbacks(cfg.get("callbacks")), EpochSeed(int(cfg.seed))]
    loggers = build_loggers(cfg.get("logger"), cfg)
    precision = resolve_precision(cfg.trainer.precision, str(cfg.trainer.get("accelerator", "auto")))
    if precision != cfg.trainer.precision:
        with open_dict(cfg):
            cfg.trainer.precision = precision
    return build_trainer(cfg.trainer, callbacks, loggers)


def _fit_and_export(cfg: DictConfig, run: Run) -> dict[str, Any]:
    """Load the faces, fit the pretext, write ``pretext.ckpt`` (first process only); the run's metrics."""
    data_cfg, pretext_cfg = to_dict(cfg.data), to_dict(cfg.pretext)
    faces = _load_faces(data_cfg)
    splits = list(cfg.get("splits") or ["train"])
    train_idx, val_idx = select_faces(faces, splits, float(cfg.get("val_fraction", 0.05)), int(cfg.seed))
    module = _build_module(cfg, pretext_cfg)
    augment = pretext_cfg.get("augment")
    loaders = _loaders(cfg, faces.images, train_idx, val_idx, augment, module.views)
    log.info(
        "pretext %s on %d faces of %s (labels ignored), %d held out to watch the loss; views per face: %d",
        pretext_cfg.get("name"),
        len(train_idx),
        data_cfg.get("name"),
        len(val_idx),
        module.views,
    )
    trainer = _build_trainer(cfg)
    if "val_dataloaders" not in loaders:
        trainer.limit_val_batches = 0
    trainer.fit(module, ckpt_path=_resume_path(cfg.get("ckpt_path")), **loaders)
    fit = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    epochs = int(trainer.current_epoch)
    info = {"class_names": None, "data": data_cfg.get("name"), "faces": int(len(train_idx)), "epochs": epochs}
    ckpt = (
        module.export(run.run_dir / PRETEXT_FILE, {"pretext_data": info}) if trainer.is_global_zero else None
    )
    return {
        **{k: v for k, v in fit.items() if k.startswith(("train/", "val/"))},
        "pretext": pretext_cfg.get("name"),
        "pretext_ckpt": str(ckpt) if ckpt else None,
        "data": data_cfg.get("name"),
        "faces": {"train": int(len(train_idx)), "val": int(len(val_idx))},
        "skipped_files": len(faces.skipped),
        "epochs": epochs,
        "seed": int(cfg.seed),
        "run_dir": str(run.run_dir),
        "seconds": run.seconds(),
    }


def pretrain(cfg: DictConfig) -> dict[str, Any]:
    """Train the pretext on the faces of ``cfg.data`` (labels ignored); write ``pretext.ckpt`` and
    metrics.json into the run dir. Returns the metrics."""
    start = time.time()
    validate_config(cfg)
    check_pretext(cfg)
    configure_process(cfg.get("threads"), to_dict(cfg.get("malloc")))
    with run_lifecycle(cfg.paths.output_dir, start) as run:
        pl.seed_everything(int(cfg.seed), workers=True)
        return run.finish(_fit_and_export(cfg, run))

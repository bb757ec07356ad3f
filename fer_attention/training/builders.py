"""Build the run's objects (data, model, callbacks, loggers, trainer) from a composed config."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from fer_attention.tracking import wandb_credentials_available
from fer_attention.training.module import FERModule

log = logging.getLogger(__name__)


def to_dict(cfg: Any) -> Any:
    """Resolved plain containers from a config node (``None`` stays ``None``)."""
    if cfg is None:
        return None
    if isinstance(cfg, DictConfig) or OmegaConf.is_config(cfg):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg


def build_datamodule(data_cfg: Any) -> pl.LightningDataModule:
    """The LightningDataModule named by ``data_cfg._target_``."""
    kwargs = to_dict(data_cfg)
    cls = get_class(kwargs.pop("_target_"))
    return cls(**kwargs)


def build_model(model_cfg: Any, data_cfg: Any = None) -> FERModule:
    """The LightningModule named by ``model_cfg._target_``; the data config is stored in it for later use."""
    kwargs = to_dict(model_cfg)
    cls = get_class(kwargs.pop("_target_"))
    if data_cfg is not None:
        kwargs["data_config"] = to_dict(data_cfg)
    return cls(**kwargs)


def build_callbacks(callbacks_cfg: Any) -> list[pl.Callback]:
    """Every callback in the group with a ``_target_``."""
    if not callbacks_cfg:
        return []
    return [instantiate(c) for c in callbacks_cfg.values() if c is not None and "_target_" in c]


def wandb_run_settings(cfg: Any) -> dict[str, Any]:
    """Group (the sweep), job type (the table) and tags (dataset, lbp, dilation, ablation, fold, seed)."""
    from hydra.core.hydra_config import HydraConfig

    select = lambda key: OmegaConf.select(cfg, key, default=None)  # noqa: E731
    tags = [str(t) for t in (select("tags") or [])]
    for key, value in (
        ("data", select("data.name")),
        ("lbp", select("model.net.lbp.method")),
        ("dilation", "-".join(map(str, select("model.net.reconstruction.rates") or []))),
        ("ablation", select("model.net.modules.name")),
        ("fold", select("data.fold")),
        ("seed", select("seed")),
    ):
        if value not in (None, ""):
            tags.append(f"{key}={value}")
    settings: dict[str, Any] = {"tags": tags, "job_type": str(select("task_name") or "train")}
    if HydraConfig.initialized():
        hc = HydraConfig.get()
        if str(hc.mode) == "RunMode.MULTIRUN":
            settings["group"] = f"{select('task_name')}/{Path(hc.sweep.dir).name}"
        settings["name"] = Path(hc.runtime.output_dir).name
    return settings


def build_loggers(logger_cfg: Any, run_cfg: Any = None) -> list:
    """Every logger in the group. W&B goes offline when no credentials are configured, and runs of one
    sweep share a group, with the table as job type and the swept values as tags."""
    if not logger_cfg:
        return []
    loggers = []
    for name, lcfg in logger_cfg.items():
        if lcfg is None or "_target_" not in lcfg:
            continue
        kwargs: dict[str, Any] = {}
        if name == "wandb":
            if lcfg.get("offline") is None:
                kwargs["offline"] = not wandb_credentials_available()
                if kwargs["offline"]:
                    log.info("W&B: no credentials found, logging offline (upload later with `wandb sync`)")
            if run_cfg is not None:
                auto = wandb_run_settings(run_cfg)
                kwargs["tags"] = sorted(set(auto["tags"]) | set(lcfg.get("tags") or []))
                for key in ("group", "job_type", "name"):
                    if key in auto and not lcfg.get(key) or (key == "job_type" and lcfg.get(key) == "train"):
                        if key in auto:
                            kwargs[key] = auto[key]
        loggers.append(instantiate(lcfg, **kwargs))
    return loggers


def build_trainer(trainer_cfg: Any, callbacks: list, loggers: list) -> pl.Trainer:
    """The Trainer, saving checkpoints atomically; a learning-rate monitor is dropped when there is no
    logger for it to write to."""
    from fer_attention.training.checkpoint_io import AtomicCheckpointIO

    if not loggers:
        callbacks = [c for c in callbacks if not isinstance(c, pl.callbacks.LearningRateMonitor)]
    plugins = [instantiate(p) for p in (to_dict(trainer_cfg.get("plugins")) or [])]
    if not any(isinstance(p, pl.plugins.CheckpointIO) for p in plugins):
        plugins.append(AtomicCheckpointIO())
    return instantiate(trainer_cfg, callbacks=callbacks, logger=loggers or False, plugins=plugins)

"""Build the run's objects (data, model, callbacks, loggers, trainer) from a composed config."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fer_attention.tracking import wandb_credentials_available
from fer_attention.training.module import FERModule

log = logging.getLogger(__name__)


def to_dict(cfg: Any) -> Any:
    """Resolved plain containers from a config node (``None`` stays ``None``), the schemas' Enum choices as
    their plain strings: what checkpoints, metrics.json and the network receive."""
    if cfg is None:
        return None
    if isinstance(cfg, DictConfig) or OmegaConf.is_config(cfg):
        return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    return cfg


def _instantiate(cfg: Any, **kwargs: Any) -> Any:
    """The object ``cfg._target_`` names, with the other keys as plain arguments (nested configs with a
    ``_target_`` stay configs: the object builds them itself, and records them as they are). An error the
    object raises is raised as it is (instantiate wraps it over several lines): a bad value is one line."""
    from hydra.errors import InstantiationException

    try:
        return instantiate(to_dict(cfg), _recursive_=False, _convert_="all", **kwargs)
    except InstantiationException as err:
        if err.__cause__ is None:
            raise
        raise err.__cause__ from None


def build_datamodule(data_cfg: Any) -> pl.LightningDataModule:
    """The LightningDataModule named by ``data_cfg._target_`` (a composed ``data`` config or a checkpoint's
    record of one)."""
    return _instantiate(data_cfg)


def build_model(model_cfg: Any, data_cfg: Any = None) -> FERModule:
    """The LightningModule named by ``model_cfg._target_``; the data config is stored in it for later use."""
    return _instantiate(model_cfg, **({"data_config": to_dict(data_cfg)} if data_cfg is not None else {}))


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
    logger for it to write to.

    Built after the callbacks and loggers, which Lightning takes as objects when the Trainer is made (not
    configs it could build itself): hence the explicit order of :func:`fer_attention.training.task.train`."""
    from fer_attention.training.checkpoint_io import AtomicCheckpointIO

    if not loggers:
        callbacks = [c for c in callbacks if not isinstance(c, pl.callbacks.LearningRateMonitor)]
    return _instantiate(
        trainer_cfg, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()]
    )

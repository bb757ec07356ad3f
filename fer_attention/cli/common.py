"""Shared command-line behaviour: user errors become one clear line, not a traceback."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from fer_attention.config import check_added_keys
from fer_attention.errors import CheckpointError, ConfigError

log = logging.getLogger("fer_attention")

USER_ERRORS = (ConfigError, CheckpointError, ValueError, FileNotFoundError, FloatingPointError)


def checkpoint_argument(cfg: Any) -> None:
    """Every fer-* command names its checkpoint ``ckpt_path``; a command that needs one and got none
    stops with one line saying what to pass."""
    if "ckpt_path" not in cfg.keys():
        return
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise ConfigError("ckpt_path is required: ckpt_path=<checkpoints/epoch_NNN.ckpt of a training run>")


def run_task(task: Callable[[Any], dict], cfg: Any) -> dict | None:
    """Run ``task(cfg)``. A user error prints one line and exits 1; in a multirun any failed job is
    recorded as failed (status.json) and the sweep goes on."""
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        if HydraConfig.initialized():
            hydra_cfg = HydraConfig.get()
            command = Path(sys.argv[0]).name or f"fer-{hydra_cfg.job.name}"
            check_added_keys(hydra_cfg.job.config_name, hydra_cfg.overrides.task, command)
        checkpoint_argument(cfg)
        return task(cfg)
    except USER_ERRORS as err:
        log.error("%s", err)
        if multirun:
            return None
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except Exception:
        if not multirun:
            raise
        # one broken job must not end the sweep: its status.json says failed, fer-report lists it
        log.exception("job failed; the sweep goes on")
        return None

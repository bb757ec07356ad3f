"""Shared command-line behaviour: user errors become one clear line, not a traceback."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from fer_attention.config import ConfigError
from fer_attention.training.checkpoint import CheckpointError

log = logging.getLogger("fer_attention")

USER_ERRORS = (ConfigError, CheckpointError, ValueError, FileNotFoundError, FloatingPointError)


def run_task(task: Callable[[Any], dict], cfg: Any) -> dict | None:
    """Run ``task(cfg)``. A user error prints one line and exits 1; in a multirun any failed job is
    recorded as failed (status.json) and the sweep goes on."""
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    try:
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

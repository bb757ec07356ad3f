"""Shared command-line behaviour: user errors become one clear line, not a traceback, those Hydra finds
while it composes the config (an unknown key, a value of the wrong type, a choice not among an Enum's values)
included: each fer-* entry point is its ``hydra.main`` function wrapped in :func:`one_line_errors`."""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fer_attention.config import check_added_keys, check_schema_keys
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
        check_schema_keys(cfg)
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


def composition_error(err: BaseException) -> str:
    """A Hydra composition error in one line: Hydra's own first line and, where OmegaConf raised it, what
    OmegaConf said about which full key (and, for a key a schema lacks, the keys it has)."""
    text = str(err).split("Config search path:")[0]  # a missing option: the options, not where Hydra looked
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    cause = err.__cause__
    if not isinstance(cause, OmegaConfBaseException):
        return " ".join(lines) or type(err).__name__
    said = [line.strip() for line in str(getattr(cause, "msg", None) or cause).splitlines() if line.strip()]
    line = ": ".join([*lines[:1], *said[:1]]).replace(".:", ":")
    key = getattr(cause, "full_key", None)
    if key and key not in line:
        line += f" (key {key})"
    kind = getattr(cause, "object_type", None)
    if isinstance(cause, AttributeError | KeyError) and dataclasses.is_dataclass(kind):
        line += f"; its keys: {', '.join(f.name for f in dataclasses.fields(kind))}"
    if key == "data.source.target":  # a dataset whose source has no vote counts
        from fer_attention.data.datamodule import VOTE_DATASETS

        line += f"; only {VOTE_DATASETS} has vote counts to train on (data=ferplus data.source.target=votes)"
    return line


# Hydra's documented switch: set to 1, Hydra raises the errors it finds instead of printing them over lines
FULL_ERROR = "HYDRA_FULL_ERROR"


def one_line_errors(hydra_main: Callable[[], Any]) -> Callable[[], Any]:
    """``hydra_main`` (a function decorated with ``hydra.main``) with the errors Hydra finds while it composes
    the config printed as one ``error:`` line (:func:`composition_error`), exit status 1.

    It turns on Hydra's ``HYDRA_FULL_ERROR`` switch for the call, so that Hydra raises such an error instead of
    printing it over several lines, and catches it here; an error of the task itself (run_task prints user
    errors in one line) then shows its whole traceback. Set by the user, ``HYDRA_FULL_ERROR=1`` shows every
    error whole, composition errors included."""

    @functools.wraps(hydra_main)
    def main() -> Any:
        if os.environ.get(FULL_ERROR) == "1":
            return hydra_main()
        os.environ[FULL_ERROR] = "1"
        try:
            return hydra_main()
        except CompactHydraException as err:
            print(f"error: {composition_error(err)}", file=sys.stderr)
            sys.exit(1)
        finally:
            os.environ.pop(FULL_ERROR, None)

    return main

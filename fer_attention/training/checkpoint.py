"""Safe checkpoint reading: weights_only loading and one clear error line for anything not ours."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fer_attention.config import ConfigError


class CheckpointError(ValueError):
    """The file is missing, unreadable, or not a fer-attention checkpoint."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` and check that it is one of ours."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - garbage input fails anywhere inside torch's unpickler
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"checkpoint {path}: not a readable PyTorch checkpoint ({reason[:200]})"
        ) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"checkpoint {path}: not a Lightning checkpoint (no state_dict)")
    hparams = ckpt.get("hyper_parameters") or {}
    if not {"net", "class_names"} <= set(hparams):
        raise CheckpointError(
            f"checkpoint {path}: not a fer-attention checkpoint (no network config in its hyperparameters)"
        )
    return ckpt


def resolve_resume_path(ckpt_path: str | None, run_dir: str | Path) -> str | None:
    """``last`` means this run dir's ``checkpoints/last.ckpt``; a path must exist."""
    if ckpt_path in (None, ""):
        return None
    if ckpt_path == "last":
        path = Path(run_dir) / "checkpoints" / "last.ckpt"
        if not path.is_file():
            raise ConfigError(
                f"ckpt_path=last but {path} does not exist; set hydra.run.dir to the run to resume"
            )
        return str(path)
    if not Path(ckpt_path).is_file():
        raise ConfigError(f"ckpt_path={ckpt_path} does not exist")
    read_checkpoint(ckpt_path)
    return str(ckpt_path)

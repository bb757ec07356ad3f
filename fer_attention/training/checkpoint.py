"""Safe checkpoint reading: weights_only loading and one clear error line for anything not ours. Lightning is
not imported here, so reading a checkpoint (``load_model``, ``fer-predict``) starts without it; the writer is
:mod:`fer_attention.training.checkpoint_io`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fer_attention.errors import CheckpointError, ConfigError
from fer_attention.runs import read_status


def _unreadable_reason(err: Exception) -> str:
    """What a file that torch cannot load safely is not, in one line. Torch's own message for a file with
    pickled objects advises loading it with ``weights_only=False``, which would run that file's code:
    never repeated here."""
    text = str(err).strip()
    if "Unsupported global" in text:
        return (
            "not a fer-attention checkpoint: it holds pickled Python objects beyond tensors and plain data, "
            "which are never loaded"
        )
    if "weights_only" in text or "Weights only" in text:
        return "not a readable PyTorch checkpoint (its contents are not tensors and plain data)"
    reason = text.splitlines()[0][:200] if text else type(err).__name__
    return f"not a readable PyTorch checkpoint ({reason})"


def load_weights_only(path: str | Path) -> Any:
    """The one way the package reads a checkpoint file: ``torch.load(weights_only=True)`` on the CPU.

    Raises:
        CheckpointError: the file cannot be read safely; the message is one line saying what the file is
            not (no path, so callers prefix the key or command that named it), never torch's advice to
            load with ``weights_only=False``.
    """
    try:
        return torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - garbage input fails anywhere inside torch's unpickler
        raise CheckpointError(_unreadable_reason(err)) from None


# The checkpoints read_checkpoint serves (noted 2026-12-06): those of fer-attention 0.1.0 in the layout it
# writes since 2026-12-02, the layout of the one committed checkpoint, the shipped model
# (fer_attention/inference/shipped/ferplus_1190k.fp16.pt, written 2026-12-07 by Lightning 2.6.6): plain
# ``net.*`` state-dict keys, the image size in ``data_config.image_size``, the LBP stream switched by
# ``net.modules.lbp``. The layouts of earlier 0.1.0 checkpoints (2026-11-26 to 2026-12-01) are not read,
# since no committed checkpoint has them: :func:`_earlier_layout` names them in a one-line error
# (``net._orig_mod.*`` keys of ``net = torch.compile(net)``, lbp=none recorded as ``lbp.method: null``,
# ``data_config.num_classes``). When the layout changes again and a committed checkpoint has the old one,
# it is rewritten into the new one here, in one function named by this note, and nowhere else.


def _earlier_layout(ckpt: dict[str, Any]) -> str | None:
    """What marks ``ckpt`` as written in a layout the note above no longer serves, or None."""
    if any("_orig_mod." in str(key) for key in ckpt["state_dict"]):
        return "net._orig_mod.* keys, from net = torch.compile(net)"
    hparams = ckpt["hyper_parameters"]
    lbp = (hparams.get("net") or {}).get("lbp")
    if isinstance(lbp, dict) and lbp.get("method") is None:
        return "lbp=none recorded as lbp.method: null"
    if "num_classes" in (hparams.get("data_config") or {}):
        return "data_config.num_classes"
    return None


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` and check that it is one of ours, in the layout the
    package writes (the note above says which versions that serves).

    Raises:
        CheckpointError: one line naming ``path``: a missing or unreadable file, a pickle that is not a
            Lightning checkpoint, a fer-pretrain pretext checkpoint, one without a network config, or one
            in a layout no longer read.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        ckpt = load_weights_only(path)
    except CheckpointError as err:
        raise CheckpointError(f"checkpoint {path}: {err}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"checkpoint {path}: not a Lightning checkpoint (no state_dict)")
    hparams = ckpt.get("hyper_parameters") or {}
    if "pretext" in hparams:
        raise CheckpointError(
            f"checkpoint {path}: a fer-pretrain pretext checkpoint (no classifier); fine-tune from it with "
            f"fer-train model.init_from={path}"
        )
    if not {"net", "class_names"} <= set(hparams):
        raise CheckpointError(
            f"checkpoint {path}: not a fer-attention checkpoint (no network config in its hyperparameters)"
        )
    earlier = _earlier_layout(ckpt)
    if earlier is not None:
        raise CheckpointError(
            f"checkpoint {path}: written in a layout of before 2026-12-02 ({earlier}) that this version no "
            "longer reads (fer_attention/training/checkpoint.py says which it serves); retrain it"
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


RESUME_IGNORED_KEYS = ("resume", "skip_done", "ckpt_path", "threads")


def _override_set(overrides: list[str]) -> set[str]:
    out = set()
    for item in overrides:
        key = str(item).split("=", 1)[0].lstrip("+~")
        if key not in RESUME_IGNORED_KEYS and not key.startswith("hydra."):
            out.add(str(item))
    return out


def _recorded_overrides(run_dir: Path) -> list[str] | None:
    import yaml

    path = run_dir / ".hydra" / "overrides.yaml"
    try:
        return [str(o) for o in yaml.safe_load(path.read_text()) or []]
    except (OSError, yaml.YAMLError):
        return None


def find_resume_dir(run_dir: str | Path, log_root: str | Path, overrides: list[str]) -> Path | None:
    """The run that ``resume=true`` continues: this run dir if it holds ``checkpoints/last.ckpt``
    (a sweep rerun into its own sweep dir, or an explicit ``hydra.run.dir``); otherwise the newest
    run under ``log_root`` (``runs/*`` and ``multiruns/*/*``) launched with the same overrides
    (``resume``, ``skip_done``, ``ckpt_path`` and ``hydra.*`` aside) that has a last checkpoint, whether
    it was killed, failed or finished (the caller returns a finished run's metrics instead of training).
    ``None`` when there is nothing to resume. A matching run whose process is still alive is an error.
    """
    run_dir = Path(run_dir)
    if (run_dir / "checkpoints" / "last.ckpt").is_file():
        return run_dir
    wanted = _override_set(overrides)
    root = Path(log_root)
    candidates = [*root.glob("runs/*"), *root.glob("multiruns/*/*")]
    for cand in sorted(candidates, key=lambda p: p.stat().st_mtime, reverse=True):
        if cand.resolve() == run_dir.resolve() or not (cand / "checkpoints" / "last.ckpt").is_file():
            continue
        recorded = _recorded_overrides(cand)
        if recorded is None or _override_set(recorded) != wanted:
            continue
        state = read_status(cand)
        if state.get("state") == "running":
            raise ConfigError(
                f"resume=true: the matching run {cand} is still running (pid {state.get('pid')} on "
                f"{state.get('host')}); stop it first"
            )
        return cand
    return None

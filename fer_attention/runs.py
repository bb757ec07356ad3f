"""Run-directory files: metrics.json, status.json and predictions.npz, written atomically."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

METRICS_FILE = "metrics.json"
STATUS_FILE = "status.json"
PREDICTIONS_FILE = "predictions.npz"


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write JSON to a temporary file in the same directory and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=False, default=_to_builtin)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


RUN_STATES = ("running", "finished", "failed", "killed", "resumed")


def write_status(run_dir: str | Path, state: str, **extra: Any) -> Path:
    """Record a run's state (running, finished, failed, resumed) with the process and host that wrote
    it, the time, and details such as the error."""
    record = {"state": state, "pid": os.getpid(), "host": socket.gethostname(), "time": time.time(), **extra}
    return write_json_atomic(Path(run_dir) / STATUS_FILE, record)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_status(run_dir: str | Path) -> dict[str, Any]:
    """The run's status record (``{"state": "missing"}`` without one). A run still marked running whose
    process no longer exists on this host is reported as ``killed`` (it died without a word: SIGKILL,
    out of memory, power loss); on another host it is left as running."""
    path = Path(run_dir) / STATUS_FILE
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"state": "missing"}
    if (
        status.get("state") == "running"
        and status.get("host") == socket.gethostname()
        and isinstance(status.get("pid"), int)
        and status["pid"] != os.getpid()
        and not _process_alive(status["pid"])
    ):
        status = {**status, "state": "killed", "error": f"process {status['pid']} ended without finishing"}
    return status


def write_predictions(
    path: str | Path,
    ids: Sequence[str],
    labels: Any,
    probs: Any,
    class_names: Sequence[str],
    split: str,
) -> Path:
    """One evaluated split's per-face predictions, compressed (about 75 KB for FER2013's 3,589 test faces):
    ``ids`` (each face's file relative to the data root, or its index), ``labels`` and ``preds`` (class
    indices, uint8), ``probs`` (float16 ``[N, classes]``), ``class_names`` and ``split``. No image."""
    path = Path(path)
    probs = np.asarray(probs, dtype=np.float32)
    labels = np.asarray(labels)
    if probs.ndim != 2 or len(probs) != len(labels) or len(ids) != len(labels):
        raise ValueError(f"predictions: {len(ids)} ids, {len(labels)} labels, probabilities {probs.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".npz")
    os.close(fd)
    try:
        np.savez_compressed(
            tmp,
            ids=np.asarray([str(i) for i in ids]),
            labels=labels.astype(np.uint8),
            preds=probs.argmax(axis=1).astype(np.uint8),
            probs=probs.astype(np.float16),
            class_names=np.asarray(list(class_names)),
            split=np.asarray(split),
        )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_predictions(path: str | Path) -> dict[str, Any]:
    """A ``predictions.npz`` as a dict of arrays (``split`` as a str); ``correct`` is ``preds == labels``."""
    with np.load(path, allow_pickle=False) as data:
        out: dict[str, Any] = {k: data[k] for k in data.files}
    out["split"] = str(out["split"])
    out["correct"] = out["preds"] == out["labels"]
    return out


def _to_builtin(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)

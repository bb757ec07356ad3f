"""Run-directory files: metrics.json and status.json, written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.json"
STATUS_FILE = "status.json"


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


def write_status(run_dir: str | Path, state: str, **extra: Any) -> Path:
    """Record a run's state (running, finished, failed) and details such as the error."""
    return write_json_atomic(Path(run_dir) / STATUS_FILE, {"state": state, **extra})


def _to_builtin(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)

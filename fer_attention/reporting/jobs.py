"""What a report is made of: a :class:`Job` (one run of a sweep, its overrides and metrics) and a
:class:`Row` (the jobs of one configuration of the table), with the metrics a table shows."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fer_attention.reporting.stats import PairedComparison
from fer_attention.runs import PREDICTIONS_FILE

METRICS = ("test/acc", "test/f1_macro", "val/acc_best")
# the metric rows are compared on
COMPARED = "test/acc"


@dataclass
class Job:
    """One job of a multirun: its directory, overrides, metrics (None if unfinished) and state."""

    path: Path
    overrides: dict[str, str]
    metrics: dict[str, Any] | None
    state: str
    error: str | None = None

    @property
    def pair_key(self) -> tuple[str, str]:
        """(fold, seed): what a job is paired on across rows."""
        seed = self.overrides.get("seed", str((self.metrics or {}).get("seed", "")))
        return self.overrides.get("data.fold", "-"), seed

    def config_value(self, key: str) -> str | None:
        """``key`` (dotted) in the job's composed ``.hydra/config.yaml``, as text; None when it has none."""
        file = self.path / ".hydra" / "config.yaml"
        node: Any = yaml.safe_load(file.read_text()) if file.is_file() else None
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return None if node is None else str(node)

    def group_choice(self, group: str) -> str | None:
        """The option of config group ``group`` (``dilation``, ``ablation``, ...) the job was composed
        with, read back from its config: the one ``conf/<group>/<option>.yaml`` whose every value the job's
        ``group`` node holds. None when no option, or more than one, matches."""
        from fer_attention.config import config_dir

        file = self.path / ".hydra" / "config.yaml"
        node = (yaml.safe_load(file.read_text()) or {}).get(group) if file.is_file() else None
        options = Path(config_dir()) / group
        if not isinstance(node, dict) or not options.is_dir():
            return None
        matches = [
            option.stem
            for option in sorted(options.glob("*.yaml"))
            if _holds(node, yaml.safe_load(option.read_text()) or {})
        ]
        return matches[0] if len(matches) == 1 else None

    def swept_value(self, key: str) -> str:
        """The job's value of a swept key: its override, else (a job pooled from a sweep that left the key
        to its default) the config group option it was composed with, else ``""``."""
        if key in self.overrides:
            return self.overrides[key]
        return self.group_choice(key) or ""

    @property
    def predictions(self) -> Path | None:
        """The job's per-face ``predictions.npz``, None when it wrote none."""
        path = self.path / PREDICTIONS_FILE
        return path if path.is_file() else None

    @property
    def test_train_ratio(self) -> float | None:
        """Test faces / training faces of the job's split (None when metrics.json records no sizes)."""
        splits = (self.metrics or {}).get("splits") or {}
        train, test = (splits.get(s, {}).get("faces") for s in ("train", "test"))
        return test / train if train and test else None


@dataclass
class Row:
    """One configuration of the table and the jobs that ran it."""

    key: tuple[tuple[str, str], ...]
    jobs: list[Job] = field(default_factory=list)
    comparison: PairedComparison | None = None
    unmatched: list[Job] = field(default_factory=list)

    @property
    def label(self) -> str:
        """``key=value, ...`` of the row's configuration."""
        return ", ".join(f"{k}={v}" for k, v in self.key) or "(all jobs)"

    def values(self, metric: str) -> np.ndarray:
        """``metric`` of each finished job that recorded it."""
        vals = [j.metrics.get(metric) for j in self.jobs if j.metrics and j.metrics.get(metric) is not None]
        return np.asarray(vals, dtype=float)

    def jobs_by_pair(self) -> dict[tuple[str, str], Job]:
        """The finished jobs by their (fold, seed)."""
        return {j.pair_key: j for j in self.jobs if j.metrics and j.metrics.get(COMPARED) is not None}

    def by_pair(self, metric: str = COMPARED) -> dict[tuple[str, str], float]:
        """``metric`` of each finished job, by its (fold, seed)."""
        return {
            j.pair_key: float(j.metrics[metric])
            for j in self.jobs
            if j.metrics and j.metrics.get(metric) is not None
        }


def _holds(node: dict[str, Any], option: dict[str, Any]) -> bool:
    """Whether ``node`` has every key of ``option`` with the same value (``defaults`` lists aside)."""
    keys = [k for k in option if k != "defaults"]
    return bool(keys) and all(k in node and node[k] == option[k] for k in keys)


def sort_key(value: str) -> tuple[int, float | str]:
    """Orders config values numerically where they are numbers, the others after them by text."""
    try:
        return 0, float(value)
    except ValueError:
        return 1, value


def launch_order(path: Path) -> tuple:
    """Hydra's job directories (``<n>_<overrides>``) by job number, so that ``10_`` follows ``9_``; other
    directories (a sweep appended beside them) after them, by name."""
    number = re.compile(r"^(\d+)_")
    return tuple(
        (0, int(m.group(1)), part) if (m := number.match(part)) else (1, 0, part) for part in path.parts
    )

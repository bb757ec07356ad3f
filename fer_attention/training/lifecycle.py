"""One run lifecycle for every task (train, eval, pretrain): ``status.json`` says ``running``, then
``finished`` beside ``metrics.json`` or ``failed`` with the error, written by the first process only (DDP
runs one task per process); the W&B run always ends, so the next multirun job starts its own."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightning.pytorch.utilities import rank_zero_only

from fer_attention.runs import METRICS_FILE, PREDICTIONS_FILE, write_json_atomic, write_predictions
from fer_attention.runs import write_status as _write_status
from fer_attention.tracking import finish_wandb

log = logging.getLogger(__name__)


def write_status(run_dir: Path, state: str, **extra: Any) -> None:
    """status.json, written by the first process only."""
    if rank_zero_only.rank == 0:
        _write_status(run_dir, state, **extra)


@dataclass
class Run:
    """The run a task is inside: its directory and start time; :meth:`finish` ends it well."""

    run_dir: Path
    start: float = field(default_factory=time.time)
    finished: bool = False

    def seconds(self) -> float:
        return round(time.time() - self.start, 2)

    def finish(self, metrics: dict[str, Any], title: str | None = None) -> dict[str, Any]:
        """Write ``metrics.json`` and status ``finished`` (first process only); with ``title``, also
        ``confusion_matrix.png`` from the metrics' confusion matrix. Returns ``metrics``."""
        self.finished = True
        if rank_zero_only.rank != 0:
            return metrics
        split_cm = next((k for k in metrics if k.endswith("/confusion_matrix") and metrics[k]), None)
        if title and split_cm:
            from fer_attention.viz.figures import plot_confusion_matrix

            plot_confusion_matrix(
                metrics[split_cm], metrics["class_names"], self.run_dir / "confusion_matrix.png", title
            )
        write_json_atomic(self.run_dir / METRICS_FILE, metrics)
        write_status(self.run_dir, "finished", seconds=metrics.get("seconds", self.seconds()))
        return metrics


@contextmanager
def run_lifecycle(run_dir: str | Path, start: float | None = None) -> Iterator[Run]:
    """Create ``run_dir`` and mark it running; mark it failed (error and seconds) if the body raises,
    then re-raise; always end the W&B run.

    Args:
        run_dir: the run's output directory.
        start: when the task started (``time.time()``), for the seconds recorded; default now.

    Yields:
        The :class:`Run`, whose :meth:`Run.finish` writes the metrics and the finished status.
    """
    run = Run(Path(run_dir), start if start is not None else time.time())
    run.run_dir.mkdir(parents=True, exist_ok=True)
    write_status(run.run_dir, "running")
    try:
        yield run
    except BaseException as err:
        write_status(run.run_dir, "failed", error=f"{type(err).__name__}: {err}", seconds=run.seconds())
        raise
    finally:
        finish_wandb()


def save_test_predictions(
    trainer, model, run_dir: Path, ids: list[str], split: str, class_names=None
) -> str | None:
    """``predictions.npz`` of the split the FERModule ``model`` just tested (its file name, for metrics.json), or None when the test
    ran sharded over several processes (each holds only its shard) or produced nothing."""
    if model.test_predictions is None:
        return None
    if trainer.world_size > 1:
        log.warning("per-face predictions are not written by a %d-process test", trainer.world_size)
        return None
    labels, probs = model.test_predictions
    model.test_predictions = None
    if len(labels) < len(ids):  # trainer.limit_test_batches: the loader's first faces, in order
        log.info(
            "per-face predictions of the first %d of %d %s faces (a limited test)",
            len(labels),
            len(ids),
            split,
        )
        ids = ids[: len(labels)]
    if len(ids) != len(labels):
        raise ValueError(f"{len(ids)} face ids for {len(labels)} predictions of the {split} split")
    write_predictions(
        run_dir / PREDICTIONS_FILE,
        ids,
        labels.numpy(),
        probs.numpy(),
        class_names or model.class_names,
        split,
    )
    return PREDICTIONS_FILE

"""One log line per epoch, so run logs (and runs without a progress bar) show how training went, and the
wall-clock time per epoch in the metrics (``time/epoch_s``, ``time/train_s`` since this process started
fitting), so curves of accuracy against time can be drawn from ``csv/metrics.csv``."""

from __future__ import annotations

import logging
import time

import lightning.pytorch as pl

log = logging.getLogger("fer_attention.train")


class EpochSummary(pl.Callback):
    """Logs epoch number, seconds, and the epoch's train and val metrics."""

    def __init__(
        self, keys: tuple[str, ...] = ("train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best")
    ):
        self.keys = tuple(keys)
        self._start = self._fit_start = time.time()

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_start = time.time()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.time()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # runs after the epoch's validation, so val metrics (val/acc_best included) are current
        now = time.time()
        pl_module.log("time/epoch_s", now - self._start, on_epoch=True)
        pl_module.log("time/train_s", now - self._fit_start, on_epoch=True)
        metrics = trainer.callback_metrics
        parts = [f"{k} {float(metrics[k]):.4f}" for k in self.keys if k in metrics]
        log.info(
            "epoch %d/%d (%.1f s): %s",
            trainer.current_epoch + 1,
            trainer.max_epochs,
            now - self._start,
            ", ".join(parts),
        )

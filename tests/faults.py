"""Test-only callbacks that inject faults into a training run at a chosen global step."""

from __future__ import annotations

import os
import signal

import lightning.pytorch as pl


class KillAtStep(pl.Callback):
    """SIGKILLs its own process after a given global step, like an OOM killer or a preempted node.
    Armed by the environment variable FER_TEST_KILL_AT_STEP, so the command line of the killed run and
    of its resumption can be identical."""

    def __init__(self) -> None:
        self.step = int(os.environ.get("FER_TEST_KILL_AT_STEP", "0"))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.step and trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class NanAtStep(pl.Callback):
    """Turns the training batch at global step ``step`` into NaNs (a corrupt batch, an exploding input)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            batch[0].fill_(float("nan"))

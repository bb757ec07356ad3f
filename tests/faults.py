"""Test-only callbacks that inject faults into a training run (at a chosen step or epoch), or script what it logs."""

from __future__ import annotations

import os
import signal

import lightning.pytorch as pl
import torch


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


class SpoilClassifierAtEpoch(pl.Callback):
    """Zeroes the network's last linear layer before validating epoch ``epoch``: from then on every face
    gets the same (first) class, so that epoch validates no better than any before it and the last
    checkpoint is not the best one."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or trainer.current_epoch != self.epoch:
            return
        last = pl_module.net.classifier.head[-1]
        last.weight.data.zero_()
        last.bias.data.zero_()


class ScriptValidationAccuracy(pl.Callback):
    """Replaces each epoch's ``val/acc`` with ``values[epoch]`` after the module has logged it and before
    the checkpoint callback (which Lightning runs last) reads it: which epoch is kept then depends only
    on the selection rule, not on whether a tiny network learns."""

    def __init__(self, values: list[float]) -> None:
        self.values = list(values)

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            trainer.callback_metrics["val/acc"] = torch.tensor(self.values[trainer.current_epoch])

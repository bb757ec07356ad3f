"""Reseed every random generator at the start of each training epoch from (run seed, epoch)."""

from __future__ import annotations

import random

import lightning.pytorch as pl
import numpy as np
import torch

from fer_attention.data.samplers import epoch_seed


class EpochSeed(pl.Callback):
    """Makes each epoch's randomness (dropout, augmentation in the main process, anything drawn from the
    global generators) a function of the run seed and the epoch alone, not of everything that ran
    before. A run killed and resumed from its last checkpoint therefore trains exactly like one never
    interrupted. The training order has the same property through
    :class:`~fer_attention.data.samplers.EpochSampler`. The train task always adds this callback.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = epoch_seed(self.seed, trainer.current_epoch) + trainer.global_rank
        torch.manual_seed(value)
        np.random.seed(value % 2**32)
        random.seed(value)

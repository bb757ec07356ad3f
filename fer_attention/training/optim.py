"""Optimiser and learning-rate schedule from config: one builder for fer-train and fer-pretrain."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
from hydra.utils import instantiate
from torch import nn


def configure_optimization(
    module: pl.LightningModule,
    optimizer_cfg: Any,
    scheduler_cfg: Any,
    groups: Sequence[tuple[list[nn.Parameter], float]] | None = None,
) -> Any:
    """What ``configure_optimizers`` returns. ``optimizer_cfg`` and ``scheduler_cfg`` are ``_partial_``
    factories (``scheduler_cfg`` without ``_target_``: no schedule; ``total_steps: auto``: the trainer's
    estimate; ``interval``: Lightning's). ``groups`` are (parameters, lr scale) pairs, default every
    parameter at scale 1; one-cycle's ``max_lr`` is scaled per group the same way."""
    groups = list(groups) if groups else [(list(module.parameters()), 1.0)]
    factory = instantiate(optimizer_cfg)
    if len(groups) == 1 and groups[0][1] == 1.0:
        optimizer = factory(params=groups[0][0])
    else:
        base_lr = float(optimizer_cfg.get("lr", 1e-3))
        optimizer = factory(params=[{"params": p, "lr": base_lr * s} for p, s in groups])
    sched_cfg = dict(scheduler_cfg or {})
    if "_target_" not in sched_cfg:
        return optimizer
    interval = sched_cfg.pop("interval", "epoch")
    if sched_cfg.get("total_steps") == "auto":
        sched_cfg["total_steps"] = max(1, int(module.trainer.estimated_stepping_batches))
    extra = {}
    if len(groups) > 1 and isinstance(sched_cfg.get("max_lr"), int | float):
        # one-cycle sets every group's lr from max_lr: one value per group keeps the scale (a plain list
        # passed at the call: instantiate would turn it into a ListConfig)
        max_lr = float(sched_cfg.pop("max_lr"))
        extra["max_lr"] = [max_lr * s for _, s in groups]
    scheduler = instantiate(sched_cfg)(optimizer=optimizer, **extra)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}

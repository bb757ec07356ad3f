"""Timing the data pipeline: one epoch through the DataLoader with the training augmentation (conf/augment)
against the full model's training throughput, and persistent loader workers on against off."""

from __future__ import annotations

import numpy as np
import torch

from fer_attention.data.augment import build_augmentation
from fer_attention.data.dataset import FaceArrayDataset

from . import decide
from .measure import timeit


def bench_data(
    faces: np.ndarray,
    labels: np.ndarray,
    batch: int,
    workers: int,
    train_ms_per_step: float,
    max_run_time: float,
    augment: list[dict],
) -> dict:
    """One epoch through the DataLoader with the training augmentation ``augment`` (conf/augment), in
    faces/s, against the full model's training throughput."""
    dataset = FaceArrayDataset(faces, labels, build_augmentation(augment))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=workers > 0
    )

    def one_epoch() -> None:
        for _ in loader:
            pass

    t = timeit(one_epoch, max_run_time)
    return {
        **decide.loader_vs_train(len(faces) / t["median"], batch, train_ms_per_step),
        "workers": workers,
        "epoch_s": t,
    }


def bench_loader_workers(
    faces: np.ndarray,
    labels: np.ndarray,
    batch: int,
    workers: int,
    epochs: int,
    max_run_time: float,
    augment: list[dict],
) -> dict:
    """Faces/s of ``epochs`` epochs through a fresh DataLoader with ``workers`` workers, worker start-up
    included, with ``persistent_workers`` off (workers restarted every epoch) and on."""
    dataset = FaceArrayDataset(faces, labels, build_augmentation(augment))
    out: dict = {"workers": workers, "epochs": epochs}
    for persistent in (False, True):

        def run(persistent: bool = persistent) -> None:
            loader = torch.utils.data.DataLoader(
                dataset, batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=persistent
            )
            for _ in range(epochs):
                for _ in loader:
                    pass
            del loader  # shuts persistent workers down inside the timing

        t = timeit(run, max_run_time)
        out["persistent" if persistent else "not_persistent"] = {
            "faces_per_s": epochs * len(faces) / t["median"],
            "s": t,
        }
    out.update(
        decide.persistent_workers(out["not_persistent"]["faces_per_s"], out["persistent"]["faces_per_s"])
    )
    return out

"""Training-set order as a pure function of (seed, epoch), so a resumed run sees the same batches."""

from __future__ import annotations

import os
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


def epoch_seed(seed: int, epoch: int) -> int:
    """One 63-bit seed per (run seed, epoch); distinct epochs and seeds give unrelated streams."""
    return int(torch.randint(0, 2**62, (1,), generator=torch.Generator().manual_seed(seed * 100_003 + epoch)))


class EpochSampler(Sampler[int]):
    """Shuffles ``num_samples`` indices (or draws them with replacement by ``weights``) from a generator
    seeded with ``(seed, epoch)``; Lightning calls :meth:`set_epoch` before every training epoch.

    ``loader_generator`` is the DataLoader's own generator (it draws the worker base seed); it is
    reseeded for the epoch too, so augmentation in workers does not depend on the run's history either.
    """

    def __init__(
        self,
        num_samples: int,
        seed: int | None = None,
        epoch: int = 0,
        weights: torch.Tensor | None = None,
    ) -> None:
        self.num_samples = int(num_samples)
        self.seed = int(os.environ.get("PL_GLOBAL_SEED", 0)) if seed is None else int(seed)
        self.weights = weights
        self.loader_generator = torch.Generator()
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.loader_generator.manual_seed(epoch_seed(self.seed, self.epoch) ^ 0x5EED)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        if self.weights is not None:
            order = torch.multinomial(self.weights, self.num_samples, replacement=True, generator=generator)
        else:
            order = torch.randperm(self.num_samples, generator=generator)
        yield from order.tolist()

    def __len__(self) -> int:
        return self.num_samples

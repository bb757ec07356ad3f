"""Training-set order as a pure function of (seed, epoch), so a resumed run sees the same batches, and
one process's shard of it under DDP."""

from __future__ import annotations

import os
from collections.abc import Iterator

import torch
from torch.utils.data import DistributedSampler, Sampler


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


class ShardedEpochSampler(DistributedSampler):
    """One process's shard of an :class:`EpochSampler` order under multi-process training: process ``rank``
    of ``num_replicas`` takes every ``num_replicas``-th index from ``rank`` on (the order padded by its start
    to equal shards), so that at a per-process batch of ``b`` the ``k``-th batches of all processes together
    are the ``k``-th batch of one process at ``b x num_replicas``: DDP trains on the same global batches, in
    the same order, as one process (weighted draws included) and resumes as exactly.

    A :class:`~torch.utils.data.DistributedSampler`, so Lightning keeps it instead of its own."""

    def __init__(self, order: EpochSampler, num_replicas: int, rank: int) -> None:
        # not DistributedSampler.__init__: it needs a dataset and an initialised process group
        self.order = order
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        if not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        self.num_samples = -(-len(order) // self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas
        self.shuffle, self.drop_last, self.seed, self.epoch = True, False, order.seed, order.epoch

    @property
    def loader_generator(self) -> torch.Generator:
        """The DataLoader generator of the underlying order (reseeded by epoch)."""
        return self.order.loader_generator

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.order.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        indices = list(self.order)
        indices += indices[: self.total_size - len(indices)]
        yield from indices[self.rank : self.total_size : self.num_replicas]

    def __len__(self) -> int:
        return self.num_samples

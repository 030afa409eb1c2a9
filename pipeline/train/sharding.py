"""The order of an epoch's training samples, and each data-parallel rank's share of it (issue 20 §3).

The epoch's permutation is `torch.randperm(n)` from a generator seeded with the epoch seed: the order torch's
RandomSampler gives one process. With W ranks, rank r takes every W-th sample from position r (as
DistributedSampler does, without its padding: the tail of n mod W samples is left out), so the r-th samples of
the ranks' k-th batches of b are together one process's k-th batch of b·W. Each item carries the epoch seed,
from which the dataset seeds that sample's augmentation and start noise (pipeline/data/dataset.sample_seed):
no state lives in the sampler's or the workers' random generators.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochShard(Sampler):
    """Yields (position, epoch seed) for this rank's share of the epoch set by `set_epoch`."""

    def __init__(self, size: int, rank: int = 0, world: int = 1):
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} of {world} ranks")
        self.size, self.rank, self.world = size, rank, world
        self.epoch_seed = 0

    def set_epoch(self, epoch_seed: int) -> None:
        self.epoch_seed = epoch_seed

    def __len__(self) -> int:
        return self.size // self.world

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.epoch_seed))
        for position in order[self.rank::self.world][:len(self)].tolist():
            yield position, self.epoch_seed

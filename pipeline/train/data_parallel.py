"""Data-parallel training over torch.distributed ranks (issue 20 §3): `torchrun --nproc_per_node W -m
stages.train_classifier <name>` (likewise train_vit).

Every rank builds the same model from the same seed, trains on its share of each global batch
(pipeline/train/sharding.py; `batch_size` in params stays the global batch, so a result does not depend on W) and
averages the gradients over the ranks before each optimiser step: the update of one process on the whole batch,
as DistributedDataParallel computes it. The averaging is one explicit all-reduce per step rather than DDP's
wrapper, because the training attacks (PGD, Grad-CAM, the pairing terms' hooks) call the bare model for input
gradients, which DDP's reducer does not allow between its forward and backward. BatchNorm layers share their
batch statistics over the ranks (pipeline/models/batch_norm.SyncedBatchNorm2d, on gloo and NCCL alike). Only
rank 0 writes. Without torchrun (no WORLD_SIZE) everything here is the single-process path.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from pipeline.models.batch_norm import synced_batch_norm

WAIT = timedelta(hours=6)      # a rank may wait this long at a collective (rank 0 writing a state, an uneven share)


@dataclass(frozen=True)
class DataParallel:
    rank: int = 0
    world: int = 1

    @classmethod
    def from_environment(cls, device: torch.device) -> DataParallel:
        """The ranks torchrun started (NCCL on GPUs, gloo on CPUs), or one process. The group is destroyed when the
        process exits: a rank that finishes first (one that does not write) otherwise aborts as its gloo threads are
        torn down ("terminate called without an active exception", 4 runs in 10 of a two-rank gather)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=WAIT)
            atexit.register(_destroy_group)
        return cls(int(os.environ.get("RANK", "0")), world)

    @property
    def writes(self) -> bool:
        """Whether this process writes the outputs and resume state (rank 0)."""
        return self.rank == 0

    def local_batch(self, global_batch: int) -> int:
        if global_batch % self.world:
            raise ValueError(f"batch_size {global_batch} does not split over {self.world} ranks: use a multiple "
                             f"of {self.world} (batch_size is the global batch)")
        return global_batch // self.world

    def prepare(self, model: nn.Module) -> nn.Module:
        """The model with its BatchNorm layers sharing batch statistics over the ranks (unchanged for one)."""
        return synced_batch_norm(model) if self.world > 1 else model

    def average_gradients(self, model: nn.Module) -> None:
        """Each parameter's gradient := its mean over the ranks, in one all-reduce of the flattened gradients."""
        if self.world == 1:
            return
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        for grad, part in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
            grad.copy_(part.view_as(grad))

    def total(self, values: torch.Tensor) -> torch.Tensor:
        """`values` summed over the ranks (epoch totals: loss sums, counts)."""
        if self.world > 1:
            dist.all_reduce(values)
        return values

    def gather(self, items: list) -> list | None:
        """Every rank's `items` joined in rank order on rank 0, None on the others (small Python objects such as COCO
        results, pickled between these processes only)."""
        if self.world == 1:
            return items
        parts = [None] * self.world if self.writes else None
        dist.gather_object(items, parts)
        return [item for part in parts for item in part] if self.writes else None

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def _destroy_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


ONE_PROCESS = DataParallel()

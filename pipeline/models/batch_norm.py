"""BatchNorm helpers: a forward pass that leaves the running statistics alone (AAD's passes on masked images,
methods.md P3), and statistics shared over data-parallel ranks (pipeline/train/data_parallel.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as distributed
from torch import nn


@contextmanager
def batch_norm_frozen(model: nn.Module) -> Iterator[None]:
    """Inside the block every BatchNorm layer of `model` that was training runs in eval mode: it normalises with its
    running statistics and does not update them (gradients still flow); the rest of the model keeps its mode."""
    training = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    for norm in training:
        norm.eval()
    try:
        yield
    finally:
        for norm in training:
            norm.train()


class SyncedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics are those of the global batch over all data-parallel ranks
    (Ioffe & Szegedy 2015, Alg. 1, on the union of the ranks' batches): the per-channel sum, then the sum of squared
    deviations from the global mean, each all-reduced with autograd (torch.distributed.nn), so gradients flow through
    the shared statistics as in one process. nn.SyncBatchNorm does this on GPUs only; this runs on gloo too."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        values = x.float()
        count = torch.tensor([values.numel() / values.shape[1]], device=x.device)
        sums = distributed.all_reduce(torch.cat([values.sum((0, 2, 3)), count]))
        total = sums[-1]
        mean = sums[:-1] / total
        centred = values - mean[None, :, None, None]
        var = distributed.all_reduce(centred.pow(2).sum((0, 2, 3))) / total
        with torch.no_grad():
            self.num_batches_tracked += 1
            momentum = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.lerp_(mean.detach(), momentum)
            self.running_var.lerp_(var.detach() * total / (total - 1), momentum)
        out = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            out = out * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return out.to(x.dtype)


def synced_batch_norm(model: nn.Module) -> nn.Module:
    """`model` with every BatchNorm2d turned into a SyncedBatchNorm2d in place (same parameters, buffers and state
    dict keys: only the class changes, so the blocks that hold the layers keep them)."""
    for module in model.modules():
        if type(module) is nn.BatchNorm2d and module.track_running_stats:
            module.__class__ = SyncedBatchNorm2d
    return model

"""A forward pass that leaves BatchNorm's running statistics alone (AAD's passes on masked images, methods.md P3)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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

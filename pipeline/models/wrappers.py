"""Normalisation and foreground masking inside the model, so attacks stay in [0, 1] pixel space."""

from __future__ import annotations

import torch
from torch import nn


class Normalized(nn.Module):
    """f(x) = net((x − mean) / std), per channel; mean and std are buffers saved with the weights."""

    def __init__(self, net: nn.Module, mean: list[float], std: list[float]):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


class Masked(nn.Module):
    """f_M(x) = model(x ⊙ M + fill·(1 − M)) (methods.md P1): the mask is re-applied inside forward.

    M (B×1×H×W, 0/1) comes from the annotations, not from x, so any perturbation outside M is erased:
    attacking f_M is the same as attacking with δ restricted to the foreground.
    """

    def __init__(self, model: nn.Module, fill: float = 0.0):
        super().__init__()
        self.model, self.fill = model, fill

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model(x * mask + self.fill * (1 - mask))

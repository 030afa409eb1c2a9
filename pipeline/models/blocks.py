"""The structure every classifier here shares: `blocks` (feature stages) then `head` (pool + linear).

Attention defenses (methods.md P2, P3) read the block outputs: AT pairs every block's attention map,
Grad-CAM uses the last block. Keeping the split explicit avoids architecture-specific hooks.
"""

from __future__ import annotations

import torch
from torch import nn


class BlockClassifier(nn.Module):
    def __init__(self, blocks: list[nn.Module], head: nn.Module):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.head = head

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of every block, first to last."""
        outputs = []
        for block in self.blocks:
            x = block(x)
            outputs.append(x)
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def pooled_linear(channels: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))

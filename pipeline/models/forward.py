"""The one way to call a classifier: optional mask argument, optional bf16 autocast, fp32 logits."""

from __future__ import annotations

import torch
from torch import nn


def model_logits(model: nn.Module, images: torch.Tensor, model_mask: torch.Tensor | None = None,
                 amp: bool = False) -> torch.Tensor:
    """`model(images[, model_mask])` with the forward under bf16 autocast if `amp`; logits cast to fp32."""
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=amp):
        out = model(images) if model_mask is None else model(images, model_mask)
    return out.float()

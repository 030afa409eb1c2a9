"""Hugging Face ViT / DeiT classifiers on [0, 1] images (seed 003, methods.md P4).

The image processor's resize and normalisation happen inside the model, differentiably, so attacks work in
[0, 1] pixel space like every other attack here. Patches are token-aligned in the model's own resolution:
attack `resize(images)`, which is what forward sees.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.wrappers import Normalized

PREFIX_TOKENS = {"vit": 1, "deit": 2}          # CLS; DeiT adds a distillation token


class HFLogits(nn.Module):
    """x → model(pixel_values=x).logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=x).logits


class ViTClassifier(nn.Module):
    """[0, 1] B×3×H×W → logits: resized to `size` (bilinear; identity at that size), normalised, classified."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float], size: tuple[int, int]):
        super().__init__()
        model_type = model.config.model_type
        if model_type not in PREFIX_TOKENS:
            raise ValueError(f"model_type {model_type!r}: the ViT stages support {sorted(PREFIX_TOKENS)}")
        self.net = Normalized(HFLogits(model), mean, std)
        self.size = tuple(size)
        self.token_size = model.config.patch_size
        self.prefix_tokens = PREFIX_TOKENS[model_type]

    @property
    def grid_width(self) -> int:
        return self.size[1] // self.token_size

    def resize(self, images: torch.Tensor) -> torch.Tensor:
        if tuple(images.shape[-2:]) == self.size:
            return images
        return F.interpolate(images, size=self.size, mode="bilinear", align_corners=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(self.resize(images))


def load_vit(folder: Path, device: torch.device) -> ViTClassifier:
    """A `save_pretrained` folder (model + image processor) as a ViTClassifier in eval mode."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(folder)
    processor = AutoImageProcessor.from_pretrained(folder)
    size = (processor.size["height"], processor.size["width"])
    return ViTClassifier(model, list(processor.image_mean), list(processor.image_std), size).to(device).eval()

"""What a ViT attends to, from its captured query/key projections (seed 003, Figures 1 and 4)."""

from __future__ import annotations

import torch

from pipeline.attacks.patch import patch_attention
from pipeline.models.forward import model_logits
from pipeline.models.hf_attention import captured_query_keys, key_query_scores
from pipeline.models.vit import ViTClassifier


@torch.no_grad()
def token_attention(model: torch.nn.Module, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Post-softmax attention on key token `tokens[b]` of image b, mean over layers, heads and queries: B values."""
    with captured_query_keys(model) as captured:
        model_logits(model, images)
        return patch_attention(captured, tokens)


@torch.no_grad()
def cls_attention_maps(model: ViTClassifier, images: torch.Tensor) -> torch.Tensor:
    """The CLS query's post-softmax attention on the image tokens, mean over heads, per layer: L×B×g×g
    (g = tokens per side; the prefix tokens' share is left out)."""
    with captured_query_keys(model) as captured:
        model_logits(model, images)
        rows = [key_query_scores(layer, normalise=False).softmax(-1)[:, :, 0, model.prefix_tokens:].mean(1)
                for layer in captured]                                                     # B×(g·g) per layer
    side = model.grid_width
    return torch.stack(rows).view(len(rows), len(images), side, side)

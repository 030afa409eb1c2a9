"""Differentiable Grad-CAM (Selvaraju et al. 2017; methods.md P3, AAD eq. 1–3) and the attention area Att(x).

g(x) = ReLU( Σ_k α_k^c A^k ),  α_k^c = mean_{h,w} ∂z_c/∂A^k, with A the output of a named layer (default:
the last block). With `create_graph=True` the map stays in the autograd graph, so a loss on it trains the
weights (AAD's L_p) or moves the input (A3Attack); analysis leaves it off.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.attention.layers import captured_outputs, named_layer
from pipeline.models.forward import model_logits


@dataclass
class GradCam:
    cam: torch.Tensor       # B×h×w at the layer's resolution
    logits: torch.Tensor    # B×K, from the same forward pass


def grad_cam(model: nn.Module, images: torch.Tensor, classes: torch.Tensor | None,
             model_mask: torch.Tensor | None = None, layer: str | None = None, create_graph: bool = False,
             amp: bool = False) -> GradCam:
    """Grad-CAM of class `classes[i]` for every image i (None: the class the model predicts for it),
    batched (one forward, one backward)."""
    module = named_layer(model, layer)
    with torch.enable_grad():
        inputs = images if images.requires_grad else images.detach().requires_grad_(True)
        with captured_outputs([module]) as outputs:
            logits = model_logits(model, inputs, model_mask, amp)
        features = outputs[0].float()
        if classes is None:
            classes = logits.detach().argmax(1)
        score = logits.gather(1, classes[:, None]).sum()
        (grad,) = torch.autograd.grad(score, outputs[0], create_graph=create_graph)
        cam = F.relu((grad.float().mean((2, 3), keepdim=True) * features).sum(1))
    if not create_graph:
        cam, logits = cam.detach(), logits.detach()
    return GradCam(cam, logits)


def upsample(cam: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """B×h×w → B×1×H×W, bilinear (the paper upsamples g to the image for masking)."""
    return F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)


@torch.no_grad()
def attention_area(cam: torch.Tensor, size: tuple[int, int], kappa: float | None = None) -> torch.Tensor:
    """Att(x) = 1[g(x) ≥ κ] as B×1×H×W float 0/1, κ = the per-image mean of g (or a fixed value); no gradient."""
    up = upsample(cam.detach(), size)
    threshold = up.mean((2, 3), keepdim=True) if kappa is None else kappa
    return (up >= threshold).float()

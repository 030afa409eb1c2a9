"""A3Attack's attention term (seed 002, Wu, Sang et al. 2022, eq. 11–13; methods.md P3).

Att_0 = Att(x_orig) is the binarised Grad-CAM of the true class on the clean image, fixed for the whole
attack; every step adds σ·||Att_0 − g(x)||₁ (g upsampled to the image, kept in the graph) to the
attacker's objective, pushing the model's attention away from where it looked: PGD+A3 ascends
CE + σ·D, Step-LL+A3 descends CE(y_LL) − σ·D.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pipeline.attention.gradcam import attention_area, grad_cam, upsample


@dataclass(frozen=True)
class AttentionTerm:
    sigma: float                      # the paper's σ (10 in its Table 7)
    layer: str | None = None          # Grad-CAM layer; None: the last block
    kappa: float | None = None        # Att threshold; None: the per-image mean of g


@dataclass
class CleanAttention:
    """Att_0 (B×1×H×W) and the classes whose Grad-CAM the attack moves, for the samples being attacked."""

    area: torch.Tensor
    classes: torch.Tensor

    def rows(self, index: torch.Tensor | None) -> CleanAttention:
        return self if index is None else CleanAttention(self.area[index], self.classes[index])


def clean_attention(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, model_mask: torch.Tensor | None,
                    term: AttentionTerm, amp: bool) -> CleanAttention:
    cam = grad_cam(model, images, labels, model_mask, term.layer, amp=amp).cam
    return CleanAttention(attention_area(cam, images.shape[-2:], term.kappa), labels)


def attention_distance(model: nn.Module, images: torch.Tensor, model_mask: torch.Tensor | None, term: AttentionTerm,
                       clean: CleanAttention, amp: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-sample distance D in the graph of `images`, the logits of the same forward pass).

    [choice] D = mean over pixels of |Att_0 − g(x)/max g(x)|: the paper writes ||Att(x) − g(x)||₁ without
    saying how g is scaled; dividing by the per-image maximum (Grad-CAM's usual [0, 1] heat map) and
    averaging over pixels make σ independent of the model's CAM scale and of the image size.
    """
    cams = grad_cam(model, images, clean.classes, model_mask, term.layer, create_graph=True, amp=amp)
    heat = upsample(cams.cam, images.shape[-2:])
    heat = heat / heat.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return (clean.area - heat).abs().flatten(1).mean(1), cams.logits

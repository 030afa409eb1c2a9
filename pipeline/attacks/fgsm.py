"""FGSM (Goodfellow et al. 2015): one signed-gradient step of size ε on the cross-entropy, L∞."""

from __future__ import annotations

import torch

from pipeline.attacks.base import Attack
from pipeline.attacks.losses import cross_entropy


class FGSM(Attack):
    """x_adv = clip(x + ε·sign ∇_x CE(f(x), y)); no random start, so restarts change nothing."""

    def run(self, images: torch.Tensor, labels: torch.Tensor, model_mask: torch.Tensor | None,
            perturb_mask: torch.Tensor | None) -> torch.Tensor:
        grad, _, _ = self.input_gradient(images, labels, model_mask, cross_entropy)
        return self.project(images + self.eps * grad.sign(), images, perturb_mask)

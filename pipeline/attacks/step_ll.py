"""Step-LL and iterative Step-LL (Kurakin et al. 2017): descend the cross-entropy towards the least-likely class.

y_LL = argmin_j z_j(x) on the clean image (fixed). One step: x_adv = x − ε·sign ∇_x CE(f(x), y_LL).
Iterative: `steps` steps of size `step_size` (default ε/4), projected onto the L∞ ball after each.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.attacks.base import Attack
from pipeline.attacks.losses import cross_entropy


class StepLL(Attack):
    def __init__(self, model: nn.Module, eps: float, *, steps: int = 1, step_size: float | None = None, **kwargs):
        super().__init__(model, eps, **kwargs)
        if steps < 1:
            raise ValueError(f"steps must be ≥ 1, got {steps}")
        self.steps = steps
        self.step_size = (eps if steps == 1 else eps / 4) if step_size is None else step_size

    def run(self, images: torch.Tensor, labels: torch.Tensor, model_mask: torch.Tensor | None,
            perturb_mask: torch.Tensor | None) -> torch.Tensor:
        with torch.no_grad():
            least_likely = self.logits(images, model_mask).argmin(1)
        self.begin(images, labels, model_mask)
        adversarial = images
        for _ in range(self.steps):
            grad, _, _ = self.input_gradient(adversarial, least_likely, model_mask, cross_entropy, ascend=False)
            adversarial = self.project(adversarial - self.step_size * grad.sign(), images, perturb_mask)
        return adversarial

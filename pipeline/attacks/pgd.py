"""PGD (Madry et al. 2018): projected gradient ascent, L∞ (signed steps) or L2 (normalised steps).

Defaults follow methods.md: random start in the ε-ball, step size ε/4, the per-sample worst case kept
over restarts (base class). `loss` picks the objective: "ce" (Madry), "cw" (the Carlini–Wagner margin,
see `cw.py`) or "dlr".
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pipeline.attacks.base import Attack, Norm, take
from pipeline.attacks.losses import LOSSES


class PGD(Attack):
    def __init__(self, model: nn.Module, eps: float, *, steps: int = 10, step_size: float | None = None,
                 norm: Norm = "linf", random_start: bool = True, loss: str = "ce", early_stop: bool = False,
                 **kwargs):
        super().__init__(model, eps, **kwargs)
        if steps < 1:
            raise ValueError(f"steps must be ≥ 1, got {steps}")
        if norm not in ("linf", "l2"):
            raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
        self.steps, self.norm, self.random_start, self.stops_early = steps, norm, random_start, early_stop
        self.step_size = eps / 4 if step_size is None else step_size
        self.loss_fn = LOSSES[loss]

    def start(self, images: torch.Tensor, perturb_mask: torch.Tensor | None) -> torch.Tensor:
        """A uniform point of the L∞ ball, or of the L2 ball (uniform direction and radius^(1/d) law)."""
        if not self.random_start:
            return images
        if self.start_noise is not None:      # given N(0, 1) draws: Φ(z) is uniform, so ε·erf(z/√2) ~ U(−ε, ε)
            if self.norm != "linf":
                raise ValueError("start_noise serves the L∞ random start (training); the L2 start draws its own")
            noise = self.eps * torch.erf(self.start_noise / math.sqrt(2))
        elif self.norm == "l2":
            direction = torch.randn(images.shape, generator=self.generator, device=images.device)
            radius = self.rand(len(images), device=images.device) ** (1 / direction[0].numel()) * self.eps
            noise = direction / direction.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * radius.view(-1, 1, 1, 1)
        else:
            noise = self.eps * (self.rand(*images.shape, device=images.device) * 2 - 1)
        return self.project(images + noise, images, perturb_mask)

    def ascent_direction(self, grad: torch.Tensor, perturb_mask: torch.Tensor | None) -> torch.Tensor:
        if self.norm == "linf":
            return grad.sign()
        if perturb_mask is not None:
            grad = grad * perturb_mask
        return grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)

    def run(self, images: torch.Tensor, labels: torch.Tensor, model_mask: torch.Tensor | None,
            perturb_mask: torch.Tensor | None) -> torch.Tensor:
        adversarial = self.start(images, perturb_mask)
        self.begin(images, labels, model_mask)
        if self.stops_early:
            return self.run_early_stop(adversarial, images, labels, model_mask, perturb_mask)
        for _ in range(self.steps):
            grad, _, _ = self.input_gradient(adversarial, labels, model_mask, self.loss_fn)
            adversarial = self.project(adversarial + self.step_size * self.ascent_direction(grad, perturb_mask),
                                       images, perturb_mask)
        return adversarial

    def run_early_stop(self, adversarial: torch.Tensor, images: torch.Tensor, labels: torch.Tensor,
                       model_mask: torch.Tensor | None, perturb_mask: torch.Tensor | None) -> torch.Tensor:
        """The same iteration, but a sample leaves the batch at the first iterate the model misclassifies; the step
        of that iterate goes to `self.stopped_at`, so the first k steps of this run are PGD-k's whole run."""
        active = torch.arange(len(images), device=images.device)
        self.stopped_at = torch.full((len(images),), self.steps, dtype=torch.long, device=images.device)
        for step in range(self.steps):
            x, pmask = adversarial[active], take(perturb_mask, active)
            grad, _, logits = self.input_gradient(x, labels[active], take(model_mask, active), self.loss_fn, rows=active)
            alive = logits.argmax(1) == labels[active]
            moved = self.project(x + self.step_size * self.ascent_direction(grad, pmask), images[active], pmask)
            adversarial[active[alive]] = moved[alive]
            self.stopped_at[active[~alive]] = step
            active = active[alive]
            if not len(active):
                break
        return adversarial

"""APGD (Croce & Hein 2020, Algorithm 1), L∞, with the cross-entropy or the DLR loss.

Step size η starts at 2ε and is halved at checkpoints w_j = ⌈p_j·N⌉ (p_0 = 0, p_1 = 0.22,
p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)) when, since the last checkpoint, the loss rose on fewer
than ρ = 0.75 of the steps, or neither η nor the best loss changed; after a halving the iterate restarts
from the best point. Momentum α = 0.75: x_{k+1} = P(x_k + α(z_{k+1} − x_k) + (1 − α)(x_k − x_{k−1})),
z_{k+1} = P(x_k + η·sign ∇f(x_k)). Every sample has its own η. Returns, per sample, the first
misclassified iterate if there was one, else the best-loss iterate.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pipeline.attacks.base import Attack
from pipeline.attacks.losses import LOSSES

MOMENTUM = 0.75
RHO = 0.75


def checkpoints(steps: int) -> list[int]:
    """The iterations w_j at which the step size may be halved (Croce & Hein 2020, §3.2)."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(round(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06), 10))
    return sorted({math.ceil(q * steps) for q in p[1:] if math.ceil(q * steps) <= steps})


class APGD(Attack):
    def __init__(self, model: nn.Module, eps: float, *, steps: int = 100, loss: str = "ce", **kwargs):
        super().__init__(model, eps, **kwargs)
        if loss not in ("ce", "dlr"):
            raise ValueError(f"APGD loss must be 'ce' or 'dlr', got {loss!r}")
        if steps < 2:
            raise ValueError(f"APGD needs at least 2 steps, got {steps}")
        self.steps, self.loss_fn = steps, LOSSES[loss]

    def run(self, images: torch.Tensor, labels: torch.Tensor, model_mask: torch.Tensor | None,
            perturb_mask: torch.Tensor | None) -> torch.Tensor:
        view = (-1, 1, 1, 1)
        eta = torch.full((len(images),), 2 * self.eps, device=images.device)
        x = self.project(images + self.eps * (2 * self.rand(*images.shape, device=images.device) - 1), images, perturb_mask)
        grad, loss, logits = self.input_gradient(x, labels, model_mask, self.loss_fn)
        found = logits.argmax(1) != labels
        best_x, best_loss, adversarial = x.clone(), loss.clone(), x.clone()
        x_prev = x
        x = self.project(x + eta.view(view) * grad.sign(), images, perturb_mask)
        rises = torch.zeros_like(loss)
        marks = checkpoints(self.steps)
        last_mark, eta_at_mark, best_at_mark = 0, eta.clone(), best_loss.clone()
        for k in range(1, self.steps):
            grad_k, loss_k, logits_k = self.input_gradient(x, labels, model_mask, self.loss_fn)
            fooled_k = logits_k.argmax(1) != labels
            adversarial[fooled_k & ~found] = x[fooled_k & ~found]
            found |= fooled_k
            rises += (loss_k > loss).float()
            improved = loss_k > best_loss
            best_x[improved], best_loss[improved] = x[improved], loss_k[improved]
            loss = loss_k
            z = self.project(x + eta.view(view) * grad_k.sign(), images, perturb_mask)
            x_next = self.project(x + MOMENTUM * (z - x) + (1 - MOMENTUM) * (x - x_prev), images, perturb_mask)
            x_prev, x = x, x_next
            if k in marks:
                stalled = (rises < RHO * (k - last_mark)) | ((eta == eta_at_mark) & (best_loss == best_at_mark))
                eta_at_mark, best_at_mark = eta.clone(), best_loss.clone()
                eta = torch.where(stalled, eta / 2, eta)
                x = torch.where(stalled.view(view), best_x, x)
                x_prev = torch.where(stalled.view(view), best_x, x_prev)
                rises.zero_()
                last_mark = k
        with torch.no_grad():
            logits = self.logits(x, model_mask)
        fooled, loss = logits.argmax(1) != labels, self.loss_fn(logits, labels)
        adversarial[fooled & ~found] = x[fooled & ~found]
        found |= fooled
        best_x[loss > best_loss] = x[loss > best_loss]
        return torch.where(found.view(view), adversarial, best_x)

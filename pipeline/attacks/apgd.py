"""APGD (Croce & Hein 2020, Algorithm 1), L∞, with the cross-entropy or the DLR loss.

Step size η starts at 2ε and is halved at checkpoints w_j = ⌈p_j·N⌉ (p_0 = 0, p_1 = 0.22,
p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)) when, since the last checkpoint, the loss rose on fewer
than ρ = 0.75 of the steps, or neither η nor the best loss changed; after a halving the iterate restarts
from the best point. Momentum α = 0.75: x_{k+1} = P(x_k + α(z_{k+1} − x_k) + (1 − α)(x_k − x_{k−1})),
z_{k+1} = P(x_k + η·sign ∇f(x_k)). Every sample has its own η. Returns, per sample, the first
misclassified iterate if there was one (the sample stops there), else the best-loss iterate.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pipeline.attacks.base import Attack, take
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
        """Algorithm 1 per sample; a sample leaves the batch at its first misclassified iterate (what it returns
        then: nothing later can change it), so later iterations cost only the samples still unbroken."""
        view = (-1, 1, 1, 1)
        eta = torch.full((len(images),), 2 * self.eps, device=images.device)
        x = self.project(images + self.eps * (2 * self.rand(*images.shape, device=images.device) - 1), images, perturb_mask)
        grad, loss, logits = self.input_gradient(x, labels, model_mask, self.loss_fn)
        found = logits.argmax(1) != labels
        best_x, best_loss, adversarial, x_prev = x.clone(), loss.clone(), x.clone(), x.clone()
        x = self.project(x + eta.view(view) * grad.sign(), images, perturb_mask)
        rises = torch.zeros_like(loss)
        marks = checkpoints(self.steps)
        last_mark, eta_at_mark, best_at_mark = 0, eta.clone(), best_loss.clone()
        for k in range(1, self.steps):
            live = (~found).nonzero()[:, 0]
            if not len(live):
                break
            x_k, pmask = x[live], take(perturb_mask, live)
            grad_k, loss_k, logits_k = self.input_gradient(x_k, labels[live], take(model_mask, live), self.loss_fn)
            fooled = logits_k.argmax(1) != labels[live]
            adversarial[live[fooled]] = x_k[fooled]
            found[live[fooled]] = True
            rises[live] += (loss_k > loss[live]).float()
            improved = loss_k > best_loss[live]
            best_x[live[improved]], best_loss[live[improved]] = x_k[improved], loss_k[improved]
            loss[live] = loss_k
            z = self.project(x_k + eta[live].view(view) * grad_k.sign(), images[live], pmask)
            x_next = self.project(x_k + MOMENTUM * (z - x_k) + (1 - MOMENTUM) * (x_k - x_prev[live]), images[live], pmask)
            x_prev[live], x[live] = x_k, x_next
            if k in marks:
                stalled = (rises < RHO * (k - last_mark)) | ((eta == eta_at_mark) & (best_loss == best_at_mark))
                eta_at_mark, best_at_mark = eta.clone(), best_loss.clone()
                eta = torch.where(stalled, eta / 2, eta)
                x = torch.where(stalled.view(view), best_x, x)
                x_prev = torch.where(stalled.view(view), best_x, x_prev)
                rises.zero_()
                last_mark = k
        live = (~found).nonzero()[:, 0]
        if len(live):
            with torch.no_grad():
                logits = self.logits(x[live], take(model_mask, live))
            fooled, loss = logits.argmax(1) != labels[live], self.loss_fn(logits, labels[live])
            adversarial[live[fooled]] = x[live[fooled]]
            found[live[fooled]] = True
            better = live[loss > best_loss[live]]
            best_x[better] = x[better]
        return torch.where(found.view(view), adversarial, best_x)

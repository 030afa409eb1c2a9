"""Square attack (Andriushchenko et al. 2020), L∞, score-based black box: the gradient-masking check.

Starts from vertical stripes of ±ε, then each query redraws one random s×s window of δ to ±ε per channel
and keeps it if the margin loss z_y − max_{j≠y} z_j decreases. The window covers a share p of the image,
p = p_init halved on the original schedule (iterations 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000 of a
10 000-query run, rescaled to `queries`); p_init = 0.8 as in AutoAttack. Windows are centred on pixels of
the perturbation mask when one is given. Only samples not yet broken spend queries.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pipeline.attacks.base import Attack, take
from pipeline.attacks.losses import margin

HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def window_share(query: int, queries: int, p_init: float) -> float:
    """p at this query: p_init halved at each of HALVINGS passed (on a 10 000-query scale)."""
    scaled = int(query / queries * 10000)
    return p_init / 2 ** sum(scaled > mark for mark in HALVINGS)


class Square(Attack):
    def __init__(self, model: nn.Module, eps: float, *, queries: int = 1000, p_init: float = 0.8, **kwargs):
        super().__init__(model, eps, **kwargs)
        if queries < 1:
            raise ValueError(f"queries must be ≥ 1, got {queries}")
        self.queries, self.p_init = queries, p_init

    def random_sign(self, *shape: int, device: torch.device) -> torch.Tensor:
        return (self.rand(*shape, device=device) < 0.5).float() * 2 - 1

    def window(self, side: int, height: int, width: int, perturb_mask: torch.Tensor | None,
               count: int, device: torch.device) -> torch.Tensor:
        """B×1×H×W booleans: one side×side window per sample, centred on a random (mask) pixel."""
        weights = torch.ones(count, height * width, device=device) if perturb_mask is None else perturb_mask.flatten(1) + 1e-12
        centre = torch.multinomial(weights, 1, generator=self.generator)[:, 0]
        top = (centre // width - side // 2).clamp(0, height - side)
        left = (centre % width - side // 2).clamp(0, width - side)
        rows = torch.arange(height, device=device)
        cols = torch.arange(width, device=device)
        in_rows = (rows >= top[:, None]) & (rows < top[:, None] + side)
        in_cols = (cols >= left[:, None]) & (cols < left[:, None] + side)
        return (in_rows[:, :, None] & in_cols[:, None, :])[:, None]

    @torch.no_grad()
    def run(self, images: torch.Tensor, labels: torch.Tensor, model_mask: torch.Tensor | None,
            perturb_mask: torch.Tensor | None) -> torch.Tensor:
        count, channels, height, width = images.shape
        stripes = self.eps * self.random_sign(count, channels, 1, width, device=images.device)
        best = self.project(images + stripes, images, perturb_mask)
        best_margin = -margin(self.logits(best, model_mask), labels)
        for query in range(self.queries):
            active = (best_margin > 0).nonzero()[:, 0]
            if not len(active):
                break
            side = min(max(round(math.sqrt(window_share(query, self.queries, self.p_init) * height * width)), 1), height - 1)
            mask = take(perturb_mask, active)
            window = self.window(side, height, width, mask, len(active), images.device)
            values = self.eps * self.random_sign(len(active), channels, 1, 1, device=images.device)
            delta = torch.where(window, values, best[active] - images[active])
            candidate = self.project(images[active] + delta, images[active], mask)
            candidate_margin = -margin(self.logits(candidate, take(model_mask, active)), labels[active])
            better = candidate_margin < best_margin[active]
            best[active[better]] = candidate[better]
            best_margin[active[better]] = candidate_margin[better]
        return best

"""Per-sample attack losses on logits (fp32), each to be *maximised* by the attacker."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """CE(z, y) per sample."""
    return F.cross_entropy(logits, labels, reduction="none")


def margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Carlini–Wagner margin max_{j≠y} z_j − z_y (Carlini & Wagner 2017, eq. 'f6' with κ=0): > 0 iff misclassified."""
    true = logits.gather(1, labels[:, None])[:, 0]
    others = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
    return others.amax(1) - true


def dlr(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Difference of logits ratio (Croce & Hein 2020, eq. 6): −(z_y − max_{j≠y} z_j) / (z_π1 − z_π3)."""
    if logits.shape[1] < 3:
        raise ValueError(f"the DLR loss needs at least 3 classes, got {logits.shape[1]}")
    ranked = logits.sort(dim=1, descending=True).values
    return margin(logits, labels) / (ranked[:, 0] - ranked[:, 2] + 1e-12)


LOSSES = {"ce": cross_entropy, "cw": margin, "dlr": dlr}

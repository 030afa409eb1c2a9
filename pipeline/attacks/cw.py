"""CW-k (methods.md P3, the AAD paper's protocol): k-step PGD on the Carlini–Wagner margin max_{j≠y} z_j − z_y."""

from __future__ import annotations

from torch import nn

from pipeline.attacks.pgd import PGD


class CW(PGD):
    """L∞ PGD ascending the margin loss instead of the cross-entropy; same defaults as `PGD`."""

    def __init__(self, model: nn.Module, eps: float, **kwargs):
        super().__init__(model, eps, loss="cw", **kwargs)

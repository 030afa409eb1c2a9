"""Zagoruyko–Komodakis attention maps (ICLR 2017, p = 2), as used by AT+ALP (methods.md P2).

at(A) = l2_normalize( mean_c A_c² flattened over h·w ): one unit vector per image and layer group.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def activation_map(features: torch.Tensor) -> torch.Tensor:
    """B×C×h×w activations → B×(h·w) unit-norm attention vectors."""
    return F.normalize(features.float().pow(2).mean(1).flatten(1), dim=1)

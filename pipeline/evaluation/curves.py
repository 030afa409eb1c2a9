"""Per-iteration curves of an attack run over several batches."""

from __future__ import annotations

import numpy as np


def padded_mean(curves: list[tuple[list[float], int]]) -> list[float]:
    """The image-weighted mean of per-batch curves; a batch that stopped early keeps its last value."""
    length = max((len(c) for c, _ in curves), default=0)
    if not length:
        return []
    total = sum(n * np.pad(np.asarray(c), (0, length - len(c)), mode="edge") for c, n in curves)
    return (total / sum(n for _, n in curves)).tolist()

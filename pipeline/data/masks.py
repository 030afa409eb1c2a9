"""Random-mask baselines with the same foreground area as the true mask (methods.md P1)."""

from __future__ import annotations

import numpy as np


def shifted_mask(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The mask's own shape moved to a uniformly random position that keeps it inside the image."""
    out = np.zeros_like(mask)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return out
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    top = int(rng.integers(0, mask.shape[0] - (y1 - y0) + 1))
    left = int(rng.integers(0, mask.shape[1] - (x1 - x0) + 1))
    out[top:top + y1 - y0, left:left + x1 - x0] = mask[y0:y1, x0:x1]
    return out


def pixel_mask(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """As many foreground pixels as the mask has, scattered uniformly without replacement."""
    out = np.zeros(mask.size, dtype=mask.dtype)
    out[rng.choice(mask.size, size=int(np.count_nonzero(mask)), replace=False)] = 1
    return out.reshape(mask.shape)


def random_masks(masks: np.ndarray, mode: str, rng: np.random.Generator) -> np.ndarray:
    """One random mask per N×H×W true mask, `mode` 'shifted' or 'pixels'."""
    make = {"shifted": shifted_mask, "pixels": pixel_mask}[mode]
    return np.stack([make(mask, rng) for mask in masks]) if len(masks) else np.zeros_like(masks)

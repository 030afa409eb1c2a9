"""The preview grid a researcher checks masks with: image | mask | masked | random-masked per row."""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.data.prepared import PreparedSplit

GAP = 2


def preview_grid(split: PreparedSplit, random_masks: np.ndarray, rows: int, scale: int) -> np.ndarray:
    """An RGB uint8 grid of `rows` samples spread over the split, each panel upscaled `scale`× (nearest)."""
    size = split.images.shape[1] * scale
    picks = np.unique(np.linspace(0, len(split.images) - 1, min(rows, len(split.images))).round().astype(int))
    grid = np.full((len(picks) * (size + GAP) + GAP, 4 * (size + GAP) + GAP, 3), 255, np.uint8)
    for row, index in enumerate(picks):
        image, mask, random = split.images[index], split.masks[index], random_masks[index]
        panels = [image, np.repeat(mask[..., None] * 255, 3, axis=2), image * mask[..., None],
                  image * random[..., None]]
        for column, panel in enumerate(panels):
            big = cv2.resize(panel.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
            top, left = GAP + row * (size + GAP), GAP + column * (size + GAP)
            grid[top:top + size, left:left + size] = big
    return grid

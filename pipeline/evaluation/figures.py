"""Pictures of attacks: clean | adversarial | perturbation (δ magnified to the full range) per row."""

from __future__ import annotations

import cv2
import numpy as np
import torch

GAP, LINE = 2, 14


def _panel(image: torch.Tensor, size: int) -> np.ndarray:
    array = (image.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    return cv2.resize(array, (size, size), interpolation=cv2.INTER_NEAREST)


def adversarial_grid(clean: torch.Tensor, adversarial: torch.Tensor, eps: float, captions: list[str],
                     scale: int = 4) -> np.ndarray:
    """RGB uint8 grid; the perturbation panel shows 0.5 + δ/(2ε), so ±ε maps to black/white.

    A caption may span several lines ("\n"); every row reserves room for the longest caption.
    """
    size = clean.shape[-1] * scale
    rows = len(clean)
    caption = LINE * max((c.count("\n") + 1 for c in captions), default=1)
    height = rows * (size + caption + GAP) + GAP
    grid = np.full((height, 3 * (size + GAP) + GAP, 3), 255, np.uint8)
    delta = 0.5 + (adversarial - clean) / (2 * eps) if eps > 0 else torch.full_like(clean, 0.5)
    for row in range(rows):
        top = GAP + row * (size + caption + GAP)
        for column, image in enumerate((clean[row], adversarial[row], delta[row])):
            left = GAP + column * (size + GAP)
            grid[top:top + size, left:left + size] = _panel(image, size)
        for line, text in enumerate(captions[row].split("\n")):
            cv2.putText(grid, text, (GAP, top + size + (line + 1) * LINE - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                        (0, 0, 0), 1, cv2.LINE_AA)
    return grid

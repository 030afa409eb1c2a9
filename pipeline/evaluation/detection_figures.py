"""Pictures of the DETR patch attack: detections drawn on the images, the encoder attention to the patch cell as a
heat map, rows of such panels with a caption (seed 003 Figure 6 style)."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from pipeline.evaluation.charts import PALETTE

HEIGHT, GAP, LINE = 160, 4, 14


def _rgb(image: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray((image.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8))


def _fit(array: np.ndarray) -> np.ndarray:
    """Resized to HEIGHT rows, aspect kept."""
    width = max(1, round(array.shape[1] * HEIGHT / array.shape[0]))
    return cv2.resize(array, (width, HEIGHT), interpolation=cv2.INTER_LINEAR)


def detections_panel(image: torch.Tensor, boxes: torch.Tensor, labels: list[str], patch_box: list[int] | None,
                     ) -> np.ndarray:
    """The image with its detections (xyxy at the image's size; a colour per class name) and the patch outlined."""
    scale = HEIGHT / image.shape[-2]
    panel = _fit(_rgb(image))
    names = sorted(set(labels))
    for (x0, y0, x1, y1), label in zip((boxes * scale).round().int().tolist(), labels):
        colour = PALETTE[names.index(label) % len(PALETTE)]
        cv2.rectangle(panel, (x0, y0), (x1, y1), colour, 1)
        cv2.putText(panel, label, (x0 + 1, max(y0 - 2, 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.3, colour, 1, cv2.LINE_AA)
    if patch_box is not None:
        x, y, w, h = (round(v * scale) for v in patch_box)
        cv2.rectangle(panel, (x, y), (x + w - 1, y + h - 1), (255, 0, 255), 1)
    return panel


def heat_panel(image: torch.Tensor, heat: torch.Tensor, stride: int) -> np.ndarray:
    """The image under a token-grid heat map (each token a stride×stride square from the top-left, the padding
    part cut off; scaled to its maximum)."""
    panel = _fit(_rgb(image))
    values = heat.float().cpu().numpy()
    values = values / values.max() * 255 if values.max() > 0 else values
    pixels = np.kron(values, np.ones((stride, stride)))[:image.shape[-2], :image.shape[-1]].astype(np.uint8)
    heat_map = cv2.resize(pixels, (panel.shape[1], panel.shape[0]), interpolation=cv2.INTER_NEAREST)
    coloured = cv2.cvtColor(cv2.applyColorMap(heat_map, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    return (0.5 * panel + 0.5 * coloured).round().astype(np.uint8)


def patch_panel(patch: torch.Tensor) -> np.ndarray:
    """A patch as a HEIGHT×HEIGHT panel (nearest neighbour, so its pixels stay visible)."""
    return cv2.resize(_rgb(patch), (HEIGHT, HEIGHT), interpolation=cv2.INTER_NEAREST)


def panel_rows(rows: list[list[np.ndarray]], captions: list[str]) -> np.ndarray:
    """RGB uint8: each row's panels side by side (HEIGHT rows each), a caption line under each row."""
    width = max(sum(p.shape[1] + GAP for p in row) + GAP for row in rows)
    caption = LINE * max(c.count("\n") + 1 for c in captions)
    grid = np.full((len(rows) * (HEIGHT + caption + GAP) + GAP, width, 3), 255, np.uint8)
    for index, (row, text) in enumerate(zip(rows, captions)):
        top, left = GAP + index * (HEIGHT + caption + GAP), GAP
        for panel in row:
            grid[top:top + HEIGHT, left:left + panel.shape[1]] = panel
            left += panel.shape[1] + GAP
        for line, words in enumerate(text.split("\n")):
            cv2.putText(grid, words, (GAP, top + HEIGHT + (line + 1) * LINE - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                        (0, 0, 0), 1, cv2.LINE_AA)
    return grid

"""The preview a researcher checks masks with: image | foreground mask | masked | random-masked per row, each row
titled with its class (matplotlib, pipeline/evaluation/plotting.py)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from pipeline.data.prepared import PreparedSplit
from pipeline.evaluation.plotting import label_grid, panel_grid, shown

PANEL_INCHES = 1.3
COLUMNS = ["image", "foreground mask", "masked", "random mask"]


def preview_figure(split: PreparedSplit, random_masks: np.ndarray, rows: int, title: str) -> Figure:
    """`rows` samples spread evenly over the split."""
    picks = np.unique(np.linspace(0, len(split.images) - 1, min(rows, len(split.images))).round().astype(int))
    figure, axes = panel_grid(len(picks), len(COLUMNS), inches=PANEL_INCHES)
    for axis_row, index in zip(axes, picks):
        image, mask, random = split.images[index], split.masks[index], random_masks[index]
        panels = [image, np.repeat(mask[..., None] * 255, 3, axis=2), image * mask[..., None],
                  image * random[..., None]]
        for axis, panel in zip(axis_row, panels):
            axis.imshow(shown(panel.astype(np.uint8)), interpolation="nearest")
    label_grid(axes, COLUMNS, [split.class_names[split.labels[index]] for index in picks])
    figure.suptitle(title, fontsize=10)
    return figure

"""What every figure of the pipeline shares (matplotlib's Agg backend, no display): grids of image panels with column
and row titles, the conversion of a tensor to a shown image, and PNG bytes."""

from __future__ import annotations

import io

import numpy as np
import torch
from matplotlib.figure import Figure

PANEL_INCHES = 2.2


def png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def panel_grid(rows: int, columns: int, extra_width: float = 0.0, inches: float = PANEL_INCHES) -> tuple[Figure, np.ndarray]:
    """A figure of rows × columns image panels without ticks (`extra_width` inches for a colour bar)."""
    figure = Figure(figsize=(inches * columns + extra_width, inches * rows + 0.6), layout="constrained")
    axes = np.array(figure.subplots(rows, columns, squeeze=False))
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    return figure, axes


def label_grid(axes: np.ndarray, column_titles: list[str], row_titles: list[str]) -> None:
    for axis, title in zip(axes[0], column_titles):
        axis.set_title(title, fontsize=9)
    for axis, title in zip(axes[:, 0], row_titles):
        axis.set_ylabel(title, fontsize=8)


def shown(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """H×W×3 floats in [0, 1] from a 3×H×W tensor in [0, 1] or an H×W×3 uint8 array."""
    if isinstance(image, torch.Tensor):
        return image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return np.asarray(image, dtype=np.float32) / 255

"""Pictures of the DETR patch attack (seed 003 §5.3, its Figure 6 style), drawn with matplotlib's Agg backend:
detections before and after with class names and scores and the patch outlined, the first image attention of every
query on the patch key with a colour bar and the key cell marked, mAP against attack steps, and the per-iteration
curves. Each function returns PNG bytes."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from pipeline.evaluation.plotting import label_grid, panel_grid, png, shown

PATCH_COLOUR = "magenta"


@dataclass
class ShownDetections:
    """One panel: an image at its working size and the detections drawn on it."""

    image: torch.Tensor            # 3×H×W in [0, 1]
    boxes: torch.Tensor            # K×4 xyxy at the image's size
    names: list[str]
    scores: list[float]


def _outline(axis, box_xywh: list[float], colour: str, style: str = "--") -> None:
    x, y, w, h = box_xywh
    axis.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, edgecolor=colour, linestyle=style, linewidth=1.2))


def detections_figure(panels: list[list[ShownDetections]], column_titles: list[str], row_titles: list[str],
                      patch_box: list[float], title: str, class_names: list[str]) -> bytes:
    """Rows of images (clean | patched per objective), each detection boxed in its class colour and labelled
    "name score"; the patch box (x, y, w, h) dashed on every panel but the first column's."""
    figure, axes = panel_grid(len(panels), len(panels[0]))
    colours = {name: f"C{i % 10}" for i, name in enumerate(class_names)}
    for row, row_panels in zip(axes, panels):
        for column, (axis, panel) in enumerate(zip(row, row_panels)):
            axis.imshow(shown(panel.image), interpolation="nearest")
            for (x0, y0, x1, y1), name, score in zip(panel.boxes.tolist(), panel.names, panel.scores):
                axis.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colours[name], linewidth=1.2))
                axis.text(x0, y0, f"{name} {score:.2f}", fontsize=6, color="white", va="bottom",
                          bbox={"facecolor": colours[name], "alpha": 0.8, "pad": 0.5, "linewidth": 0})
            if column:
                _outline(axis, patch_box, PATCH_COLOUR)
    label_grid(axes, column_titles, row_titles)
    figure.suptitle(title, fontsize=10)
    return png(figure)


def attention_figure(images: list[list[torch.Tensor]], maps: list[list[torch.Tensor]], column_titles: list[str],
                     row_titles: list[str], cell: tuple[int, int], stride: int, title: str) -> bytes:
    """Rows of images with each token's attention on the patch key (h×w maps, mean over heads; shown per token cell
    over the image) on one colour scale with its bar; the key cell outlined."""
    figure, axes = panel_grid(len(images), len(images[0]), extra_width=0.8)
    top = max(float(m.max()) for row in maps for m in row) or 1.0
    mappable = None
    for axis_row, image_row, map_row in zip(axes, images, maps):
        for axis, image, heat in zip(axis_row, image_row, map_row):
            height, width = image.shape[-2:]
            axis.imshow(shown(image).mean(-1), cmap="gray", vmin=0, vmax=1)
            extent = (-0.5, heat.shape[1] * stride - 0.5, heat.shape[0] * stride - 0.5, -0.5)
            mappable = axis.imshow(heat.cpu().numpy(), cmap="inferno", vmin=0, vmax=top, alpha=0.75, extent=extent,
                                   interpolation="nearest")
            axis.set_xlim(-0.5, width - 0.5)
            axis.set_ylim(height - 0.5, -0.5)
            _outline(axis, [cell[1] * stride, cell[0] * stride, stride, stride], "cyan", "-")
    label_grid(axes, column_titles, row_titles)
    bar = figure.colorbar(mappable, ax=axes, shrink=0.8)
    bar.set_label("attention on the patch key (softmax weight)", fontsize=8)
    figure.suptitle(title, fontsize=10)
    return png(figure)


def map_steps_figure(curves: dict[str, list[tuple[int, float]]], clean: float, title: str) -> bytes:
    """mAP@[.5:.95] (%) against attack iterations, a line per objective, the clean mAP dashed."""
    figure = Figure(figsize=(5.2, 3.4), layout="constrained")
    axis = figure.subplots()
    for objective, points in curves.items():
        steps, values = zip(*points)
        axis.plot(steps, [100 * v for v in values], marker="o", label=objective)
    axis.axhline(100 * clean, color="grey", linestyle="--", label="clean")
    axis.set_xlabel("attack iterations")
    axis.set_ylabel("mAP@[.5:.95] (%)")
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    axis.set_title(title, fontsize=10)
    return png(figure)


def iteration_curves_figure(objective: dict[str, list[float]], attention: dict[str, list[float]], uniform: float,
                            title: str) -> bytes:
    """Two panels per iteration: the objective, and the attention on the patch key (mean over heads and queries)
    against the uniform share 1/n."""
    figure = Figure(figsize=(9, 3.2), layout="constrained")
    left, right = figure.subplots(1, 2)
    for name in objective:
        left.plot(objective[name], label=name)
        right.plot([100 * a for a in attention[name]], label=name)
    right.axhline(100 * uniform, color="grey", linestyle="--", label="uniform 1/n")
    for axis, label in ((left, "objective (per image)"), (right, "attention on the patch key (%)")):
        axis.set_xlabel("attack iteration")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    return png(figure)

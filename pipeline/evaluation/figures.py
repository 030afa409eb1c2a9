"""Pictures of attacks on classifiers, drawn with matplotlib (pipeline/evaluation/plotting.py); each function returns
a Figure with a title, column titles, row titles and a colour bar wherever colour carries a value:

- adversarial_figure: clean | adversarial | perturbation δ on a diverging scale in /255 units;
- gradcam_figure: image | clean Grad-CAM | adversarial Grad-CAM (seed 002, Figure 1);
- cam_epochs_figure: one image and its Grad-CAM after successive training epochs (seed 002, Figure 6);
- image_rows_figure: rows of images (e.g. clean | patched under each objective);
- heat_rows_figure: rows of an image and heat maps over it (e.g. a ViT's CLS attention per layer, seed 003 Figure 4);
- curves_figure: one panel per group of curves against the iteration (e.g. the attention on the patch per update).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from pipeline.evaluation.plotting import label_grid, panel_grid, shown

HEAT_MAP = "jet"
BAR_INCHES = 0.9


def _overlay(axis, image: torch.Tensor, heat: torch.Tensor, top: float, smooth: bool):
    """The image in grey with `heat` (h×w) on [0, top] over it, upsampled to the image bilinearly (`smooth`, a
    Grad-CAM) or per cell (a token map)."""
    size = image.shape[-2:]
    heat = heat.detach().float()[None, None].cpu()
    heat = (F.interpolate(heat, size=size, mode="bilinear", align_corners=False) if smooth
            else F.interpolate(heat, size=size, mode="nearest"))[0, 0]
    axis.imshow(shown(image).mean(-1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    return axis.imshow(heat.numpy(), cmap=HEAT_MAP, vmin=0, vmax=top, alpha=0.55, interpolation="nearest")


def _normalised(cam: torch.Tensor) -> torch.Tensor:
    """A Grad-CAM divided by its own maximum (an all-zero CAM stays zero)."""
    top = float(cam.max())
    return cam / top if top > 0 else cam


def adversarial_figure(clean: torch.Tensor, adversarial: torch.Tensor, eps: float, row_titles: list[str],
                       title: str) -> Figure:
    """Per row: the clean image, the adversarial one and δ = x_adv − x (mean over RGB) on [−ε, +ε] in /255 units."""
    figure, axes = panel_grid(len(clean), 3, extra_width=BAR_INCHES)
    bound = max(eps * 255, 1e-6)
    delta = ((adversarial - clean) * 255).mean(1)
    mappable = None
    for row, axis_row in enumerate(axes):
        axis_row[0].imshow(shown(clean[row]), interpolation="nearest")
        axis_row[1].imshow(shown(adversarial[row]), interpolation="nearest")
        mappable = axis_row[2].imshow(delta[row].detach().cpu().numpy(), cmap="RdBu_r", vmin=-bound, vmax=bound,
                                      interpolation="nearest")
    label_grid(axes, ["clean", "adversarial", "perturbation δ"], row_titles)
    figure.colorbar(mappable, ax=axes[:, 2], shrink=0.8).set_label("δ, mean over RGB (/255)", fontsize=8)
    figure.suptitle(title, fontsize=10)
    return figure


def gradcam_figure(images: torch.Tensor, clean_cams: torch.Tensor, adversarial_cams: torch.Tensor,
                   row_titles: list[str], title: str) -> Figure:
    """Per row: the image, its Grad-CAM on the clean image and on the adversarial one, each CAM scaled to its own
    maximum."""
    figure, axes = panel_grid(len(images), 3, extra_width=BAR_INCHES)
    mappable = None
    for row, axis_row in enumerate(axes):
        axis_row[0].imshow(shown(images[row]), interpolation="nearest")
        for axis, cam in zip(axis_row[1:], (clean_cams[row], adversarial_cams[row])):
            mappable = _overlay(axis, images[row], _normalised(cam), 1.0, smooth=True)
    label_grid(axes, ["image", "Grad-CAM, clean", "Grad-CAM, adversarial"], row_titles)
    figure.colorbar(mappable, ax=axes, shrink=0.8).set_label("Grad-CAM / its maximum", fontsize=8)
    figure.suptitle(title, fontsize=10)
    return figure


def cam_epochs_figure(image: torch.Tensor, cams: list[torch.Tensor], epochs: list[int], title: str) -> Figure:
    """The image, then its Grad-CAM (true class, scaled to its own maximum) after each epoch."""
    return heat_rows_figure([(image, [_normalised(cam) for cam in cams])],
                            ["image", *(f"epoch {epoch}" for epoch in epochs)], [""], title, "Grad-CAM / its maximum",
                            smooth=True)


def message_figure(text: str) -> Figure:
    """A small figure that says why there is nothing to draw."""
    figure = Figure(figsize=(4, 1))
    figure.text(0.5, 0.5, text, ha="center", va="center", fontsize=9)
    return figure


def image_rows_figure(rows: list[list[torch.Tensor]], column_titles: list[str], row_titles: list[str],
                      title: str) -> Figure:
    figure, axes = panel_grid(len(rows), max(len(row) for row in rows))
    for axis_row, images in zip(axes, rows):
        for axis, image in zip(axis_row, images):
            axis.imshow(shown(image), interpolation="nearest")
    label_grid(axes, column_titles, row_titles)
    figure.suptitle(title, fontsize=10)
    return figure


def heat_rows_figure(rows: list[tuple[torch.Tensor, list[torch.Tensor]]], column_titles: list[str],
                     row_titles: list[str], title: str, bar_label: str, smooth: bool = False) -> Figure:
    """Per row: the image, then each heat map over it, all on one colour scale [0, the largest value]."""
    figure, axes = panel_grid(len(rows), 1 + max(len(heats) for _, heats in rows), extra_width=BAR_INCHES)
    top = max((float(heat.max()) for _, heats in rows for heat in heats), default=1.0) or 1.0
    mappable = None
    for axis_row, (image, heats) in zip(axes, rows):
        axis_row[0].imshow(shown(image), interpolation="nearest")
        for axis, heat in zip(axis_row[1:], heats):
            mappable = _overlay(axis, image, heat, top, smooth)
    label_grid(axes, column_titles, row_titles)
    figure.colorbar(mappable, ax=axes, shrink=0.8).set_label(bar_label, fontsize=8)
    figure.suptitle(title, fontsize=10)
    return figure


def curves_figure(panels: dict[str, dict[str, list[float]]], x_label: str, y_label: str, title: str) -> Figure:
    """One panel per entry of `panels` (its title → series name → values per iteration), with a legend and grid."""
    figure = Figure(figsize=(4.6 * len(panels), 3.4), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for axis, (panel_title, series) in zip(axes, panels.items()):
        for name, values in series.items():
            axis.plot(range(len(values)), values, label=name)
        axis.set(title=panel_title, xlabel=x_label, ylabel=y_label)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    return figure

"""Pictures of attacks: rows of panels with a caption under each row.

- adversarial_grid: clean | adversarial | perturbation (δ magnified to the full range);
- attention_grid: image | clean Grad-CAM | adversarial Grad-CAM (seed 002, Figure 1);
- cam_evolution: one image and its Grad-CAM after successive training epochs (seed 002, Figure 6);
- image_rows: rows of images (e.g. clean | patched under each objective);
- heat_rows: rows of images with a heat map on each (e.g. a ViT's CLS attention per layer, seed 003 Figure 4).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

GAP, LINE = 2, 14


def _panel(image: torch.Tensor, size: int) -> np.ndarray:
    array = (image.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    return cv2.resize(array, (size, size), interpolation=cv2.INTER_NEAREST)


def _heat_overlay(image: torch.Tensor, cam: torch.Tensor, size: int) -> np.ndarray:
    """The image with its Grad-CAM (scaled to its own maximum) blended on top as a JET heat map."""
    heat = cam.detach().float().cpu().numpy()
    heat = (heat / heat.max() if heat.max() > 0 else heat) * 255
    heat = cv2.resize(heat.astype(np.uint8), (size, size), interpolation=cv2.INTER_LINEAR)
    coloured = cv2.cvtColor(cv2.applyColorMap(heat, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    return (0.5 * _panel(image, size) + 0.5 * coloured).round().astype(np.uint8)


def _grid(rows: list[tuple[np.ndarray, ...]], captions: list[str], size: int) -> np.ndarray:
    """RGB uint8: each row's size×size panels side by side; a caption may span several lines ("\\n")."""
    caption = LINE * max((c.count("\n") + 1 for c in captions), default=1)
    columns = max((len(r) for r in rows), default=1)
    grid = np.full((len(rows) * (size + caption + GAP) + GAP, columns * (size + GAP) + GAP, 3), 255, np.uint8)
    for index, (panels, text) in enumerate(zip(rows, captions)):
        top = GAP + index * (size + caption + GAP)
        for column, panel in enumerate(panels):
            left = GAP + column * (size + GAP)
            grid[top:top + size, left:left + size] = panel
        for line, words in enumerate(text.split("\n")):
            cv2.putText(grid, words, (GAP, top + size + (line + 1) * LINE - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                        (0, 0, 0), 1, cv2.LINE_AA)
    return grid


def adversarial_grid(clean: torch.Tensor, adversarial: torch.Tensor, eps: float, captions: list[str],
                     scale: int = 4) -> np.ndarray:
    """The perturbation panel shows 0.5 + δ/(2ε), so ±ε maps to black/white."""
    size = clean.shape[-1] * scale
    delta = 0.5 + (adversarial - clean) / (2 * eps) if eps > 0 else torch.full_like(clean, 0.5)
    rows = [tuple(_panel(image, size) for image in (clean[i], adversarial[i], delta[i])) for i in range(len(clean))]
    return _grid(rows, captions, size)


def attention_grid(images: torch.Tensor, clean_cams: torch.Tensor, adversarial_cams: torch.Tensor,
                   captions: list[str], scale: int = 4) -> np.ndarray:
    size = images.shape[-1] * scale
    rows = [(_panel(images[i], size), _heat_overlay(images[i], clean_cams[i], size),
             _heat_overlay(images[i], adversarial_cams[i], size)) for i in range(len(images))]
    return _grid(rows, captions, size)


def cam_evolution(image: torch.Tensor, cams: list[torch.Tensor], epochs: list[int], scale: int = 4) -> np.ndarray:
    return heat_rows([(image, cams)], ["image | Grad-CAM after epoch " + ", ".join(map(str, epochs))], scale)


def image_rows(rows: list[list[torch.Tensor]], captions: list[str], scale: int = 4) -> np.ndarray:
    size = rows[0][0].shape[-1] * scale
    return _grid([tuple(_panel(image, size) for image in row) for row in rows], captions, size)


def heat_rows(rows: list[tuple[torch.Tensor, list[torch.Tensor]]], captions: list[str], scale: int = 4) -> np.ndarray:
    """One row per (image, heat maps): the image, then the image under each heat map (each scaled to its maximum)."""
    size = rows[0][0].shape[-1] * scale
    return _grid([(_panel(image, size), *(_heat_overlay(image, heat, size) for heat in heats)) for image, heats in rows],
                 captions, size)

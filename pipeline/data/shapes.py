"""Sign outlines drawn inside a box: one geometry for the synthetic signs and for their masks."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

Box = tuple[float, float, float, float]  # x1, y1, x2, y2, inclusive pixel coordinates


def shape_polygon(shape: str, box: Box) -> list[tuple[float, float]]:
    """Vertices of `shape` inscribed in `box` (a circle is a 64-gon)."""
    x1, y1, x2, y2 = box
    cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
    if shape == "circle":
        return [(cx + rx * math.cos(t), cy + ry * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 64, endpoint=False)]
    if shape == "triangle":
        return [(cx, y1), (x2, y2), (x1, y2)]
    if shape == "inverted_triangle":
        return [(x1, y1), (x2, y1), (cx, y2)]
    if shape == "diamond":
        return [(cx, y1), (x2, cy), (cx, y2), (x1, cy)]
    if shape == "octagon":  # regular: flat sides on the box, corners cut at tan(π/8) of the half-size
        ax, ay = rx * math.tan(math.pi / 8), ry * math.tan(math.pi / 8)
        return [(cx - ax, y1), (cx + ax, y1), (x2, cy - ay), (x2, cy + ay), (cx + ax, y2), (cx - ax, y2),
                (x1, cy + ay), (x1, cy - ay)]
    if shape == "box":
        return [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
    raise ValueError(f"unknown sign shape {shape!r}")


def shrink_box(box: Box, fraction: float) -> Box:
    """`box` shrunk towards its centre by `fraction` of its half-size on every side."""
    x1, y1, x2, y2 = box
    dx, dy = (x2 - x1) / 2 * fraction, (y2 - y1) / 2 * fraction
    return (x1 + dx, y1 + dy, x2 - dx, y2 - dy)


def shape_mask(shape: str, box: Box, height: int, width: int) -> np.ndarray:
    """H×W uint8 0/1 mask of `shape` drawn in `box`."""
    canvas = Image.new("L", (width, height), 0)
    ImageDraw.Draw(canvas).polygon(shape_polygon(shape, box), fill=1)
    return np.asarray(canvas, dtype=np.uint8)

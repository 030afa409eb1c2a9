"""Line charts as RGB arrays (OpenCV, no plotting library): curves a researcher compares by eye."""

from __future__ import annotations

import cv2
import numpy as np

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127)]                                                # RGB
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 420, 300, 52, 12, 26, 40
FONT, SMALL = cv2.FONT_HERSHEY_SIMPLEX, 0.35


def _text(canvas: np.ndarray, text: str, origin: tuple[int, int], colour=(0, 0, 0)) -> None:
    cv2.putText(canvas, text, origin, FONT, SMALL, colour, 1, cv2.LINE_AA)


def line_chart(series: dict[str, list[float]], title: str, x_label: str, y_label: str) -> np.ndarray:
    """One panel: every series against its index (0, 1, …), y from 0 (or the minimum, if negative) to the
    maximum, with the extreme values on the axes and a legend in series order at the bottom right (where
    rising curves that level off leave room)."""
    canvas = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    values = [v for curve in series.values() for v in curve]
    low, high = min(0.0, *values) if values else 0.0, max(values, default=1.0)
    high = high if high > low else low + 1
    length = max((len(c) for c in series.values()), default=1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def point(index: int, value: float) -> tuple[int, int]:
        x = LEFT + round(plot_w * index / max(length - 1, 1))
        return x, TOP + round(plot_h * (1 - (value - low) / (high - low)))

    cv2.rectangle(canvas, (LEFT, TOP), (LEFT + plot_w, TOP + plot_h), (0, 0, 0), 1)
    for index, (name, curve) in enumerate(series.items()):
        colour = PALETTE[index % len(PALETTE)]
        if curve:
            cv2.polylines(canvas, [np.array([point(i, v) for i, v in enumerate(curve)], np.int32)], False, colour, 1,
                          cv2.LINE_AA)
        _text(canvas, name, (LEFT + plot_w - 110, TOP + plot_h - 8 - 13 * (len(series) - 1 - index)), colour)
    _text(canvas, title, (LEFT, TOP - 9))
    _text(canvas, f"{high:.3g}", (2, TOP + 4))
    _text(canvas, f"{low:.3g}", (2, TOP + plot_h))
    _text(canvas, y_label, (2, TOP + plot_h // 2))
    _text(canvas, "0", (LEFT, TOP + plot_h + 14))
    _text(canvas, str(length - 1), (LEFT + plot_w - 18, TOP + plot_h + 14))
    _text(canvas, x_label, (LEFT + plot_w // 2 - 20, TOP + plot_h + 30))
    return canvas

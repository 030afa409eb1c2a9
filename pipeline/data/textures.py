"""Pixels for the synthetic data: cluttered backgrounds, textured fills, lighting and blur."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def random_color(rng: np.random.Generator, low: int = 0, high: int = 256) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(low, high, size=3))


def cluttered_background(rng: np.random.Generator, height: int, width: int, clutter: int) -> Image.Image:
    """A gradient with noise and `clutter` random unannotated shapes and lines on top."""
    start, end = np.array(random_color(rng), float), np.array(random_color(rng), float)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:height, 0:width]
    t = (np.cos(angle) * xx / max(width, 1) + np.sin(angle) * yy / max(height, 1) + 1) / 2
    pixels = start + (end - start) * t[..., None] + rng.normal(0, 12, size=(height, width, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(clutter):
        x0, y0 = int(rng.integers(-width // 8, width)), int(rng.integers(-height // 8, height))
        x1, y1 = x0 + int(rng.uniform(0.05, 0.4) * width), y0 + int(rng.uniform(0.05, 0.4) * height)
        color = random_color(rng)
        kind = rng.integers(3)
        if kind == 0:
            draw.rectangle((x0, y0, x1, y1), fill=color)
        elif kind == 1:
            draw.ellipse((x0, y0, x1, y1), fill=color)
        else:
            draw.line((x0, y1, x1, y0), fill=color, width=int(rng.integers(1, 5)))
    return image


def textured_fill(rng: np.random.Generator, height: int, width: int, color: tuple[int, int, int],
                  pattern: str, period: int) -> np.ndarray:
    """H×W×3 uint8 of `color` with `pattern` (a darker second tone), jittered per call."""
    yy, xx = np.mgrid[0:height, 0:width]
    phase = int(rng.integers(period))
    if pattern == "solid":
        second = np.zeros((height, width), bool)
    elif pattern == "hstripes":
        second = ((yy + phase) // max(period // 2, 1)) % 2 == 1
    elif pattern == "vstripes":
        second = ((xx + phase) // max(period // 2, 1)) % 2 == 1
    elif pattern == "checker":
        second = (((xx + phase) // period) + ((yy + phase) // period)) % 2 == 1
    elif pattern == "dots":
        second = (((xx + phase) % period) - period / 2) ** 2 + (((yy + phase) % period) - period / 2) ** 2 < (period / 4) ** 2
    elif pattern == "diagonal":
        second = ((xx + yy + phase) // max(period // 2, 1)) % 2 == 1
    else:
        raise ValueError(f"unknown pattern {pattern!r}")
    base = np.array(color, float) * rng.uniform(0.85, 1.15)
    pixels = np.where(second[..., None], base * 0.45, base) + rng.normal(0, 6, size=(height, width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def relight(rng: np.random.Generator, image: Image.Image, brightness: tuple[float, float],
            blur_radius: float) -> Image.Image:
    """Random brightness and contrast, sensor noise and a Gaussian blur of up to `blur_radius` px."""
    pixels = np.asarray(image, float)
    gain, contrast = rng.uniform(*brightness), rng.uniform(0.7, 1.3)
    mean = pixels.mean()
    pixels = ((pixels - mean) * contrast + mean) * gain + rng.normal(0, 4, size=pixels.shape)
    out = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    radius = rng.uniform(0, blur_radius)
    return out.filter(ImageFilter.GaussianBlur(radius)) if radius > 0.2 else out

"""Decoding: every source image becomes H×W×3 uint8 RGB; unreadable bytes raise."""

import io

import numpy as np
import pytest
from PIL import Image

from pipeline.data.images import decode_rgb, resize_pair


def test_grayscale_and_cmyk_become_rgb():
    for mode, colour in (("L", 128), ("CMYK", (0, 255, 255, 0))):
        buffer = io.BytesIO()
        Image.new(mode, (8, 6), colour).save(buffer, format="JPEG")
        pixels = decode_rgb(buffer.getvalue())
        assert pixels.shape == (6, 8, 3) and pixels.dtype.name == "uint8"
    assert pixels[..., 0].mean() > 200 and pixels[..., 1].mean() < 60  # CMYK (0,1,1,0) is red


def test_truncated_bytes_raise():
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 20, 30)).save(buffer, format="JPEG")
    with pytest.raises(OSError):
        decode_rgb(buffer.getvalue()[:200])


def test_resize_pair_keeps_mask_binary():
    image = np.random.default_rng(0).integers(0, 256, size=(50, 70, 3), dtype=np.uint8)
    mask = np.zeros((50, 70), np.uint8)
    mask[10:40, 20:50] = 1
    small_image, small_mask = resize_pair(image, mask, 16)
    assert small_image.shape == (16, 16, 3) and small_mask.shape == (16, 16)
    assert set(np.unique(small_mask)) == {0, 1}

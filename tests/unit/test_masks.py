"""Random-mask baselines keep the true mask's area (and, shifted, its shape)."""

import numpy as np
import pytest

from pipeline.data.masks import pixel_mask, random_masks, shifted_mask


def _blob(size=32):
    mask = np.zeros((size, size), np.uint8)
    mask[5:15, 8:20] = 1
    mask[15:20, 8:11] = 1
    return mask


def test_shifted_mask_is_a_translation():
    mask = _blob()
    for seed in range(20):
        out = shifted_mask(mask, np.random.default_rng(seed))
        ys, xs = np.nonzero(out)
        crop = out[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        np.testing.assert_array_equal(crop, mask[5:20, 8:20])


def test_shifted_positions_cover_the_image():
    tops = {np.nonzero(shifted_mask(_blob(), np.random.default_rng(s)))[0].min() for s in range(200)}
    assert min(tops) == 0 and max(tops) == 32 - 15


def test_pixel_mask_keeps_area():
    mask = _blob()
    out = pixel_mask(mask, np.random.default_rng(0))
    assert out.sum() == mask.sum() and set(np.unique(out)) == {0, 1}
    assert (out & mask).sum() < mask.sum()


@pytest.mark.parametrize("mode", ["shifted", "pixels"])
def test_random_masks_keep_each_area_and_handle_empty(mode):
    masks = np.stack([_blob(), np.zeros((32, 32), np.uint8), np.ones((32, 32), np.uint8)])
    out = random_masks(masks, mode, np.random.default_rng(1))
    assert out.shape == masks.shape and out.dtype == masks.dtype
    assert list(out.reshape(3, -1).sum(1)) == list(masks.reshape(3, -1).sum(1))

"""The torch Dataset: memory-mapped arrays, geometry applied to image and masks together."""

import numpy as np
import pytest
import torch

from pipeline.config import Augment
from pipeline.data.dataset import PreparedDataset, SampleTensors
from pipeline.io.atomic import write_npy

NONE = dict(hflip=0.0, shift=0.0, scale=0.0, rotate_deg=0.0, brightness_contrast=0.0)


@pytest.fixture
def split(tmp_path):
    """Images whose red channel is 255 exactly on the mask and 0 elsewhere."""
    rng = np.random.default_rng(0)
    masks = np.zeros((6, 32, 32), np.uint8)
    for i, mask in enumerate(masks):
        mask[4 + i:20 + i, 3:12 + 2 * i] = 1
    images = np.zeros((6, 32, 32, 3), np.uint8)
    images[..., 0] = masks * 255
    images[..., 1] = rng.integers(0, 50, size=(6, 32, 32))
    write_npy(tmp_path / "images.npy", images)
    write_npy(tmp_path / "masks.npy", masks)
    write_npy(tmp_path / "random_masks.npy", masks[::-1].copy())
    write_npy(tmp_path / "labels.npy", np.arange(6, dtype=np.int64))
    return tmp_path, images, masks


def test_items_without_augmentation(split):
    folder, images, masks = split
    dataset = PreparedDataset(folder)
    image, mask, random, label, _ = dataset[2]
    assert len(dataset) == 6 and label == 2
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert torch.equal(image, torch.from_numpy(images[2]).permute(2, 0, 1).float() / 255)
    assert torch.equal(mask[0], torch.from_numpy(masks[2]).float()) and torch.equal(random[0], torch.from_numpy(masks[3]).float())


def test_flip_moves_image_and_masks_together(split):
    folder, images, masks = split
    image, mask, random, _, _ = PreparedDataset(folder, Augment(**{**NONE, "hflip": 1.0}))[1]
    assert torch.equal(mask[0], torch.from_numpy(masks[1][:, ::-1].copy()).float())
    assert torch.equal(random[0], torch.from_numpy(masks[4][:, ::-1].copy()).float())
    assert torch.equal(image[0], torch.from_numpy(images[1][:, ::-1, 0].copy()).float() / 255)


def test_affine_keeps_mask_on_the_object(split):
    folder, _, _ = split
    dataset = PreparedDataset(folder, Augment(hflip=0.5, shift=0.15, scale=0.15, rotate_deg=20, brightness_contrast=0.0))
    for index in range(6):
        image, mask, _, _, _ = dataset[index]
        red = image[0] > 0.5
        overlap = (red & (mask[0] > 0)).sum() / (red | (mask[0] > 0)).sum()
        assert overlap > 0.85


def test_photometric_changes_only_the_image(split):
    folder, images, masks = split
    image, mask, _, _, _ = PreparedDataset(folder, Augment(**{**NONE, "brightness_contrast": 0.5}))[0]
    assert torch.equal(mask[0], torch.from_numpy(masks[0]).float())
    assert image.min() >= 0 and image.max() <= 1


def test_length_mismatch_is_named(split):
    folder, _, _ = split
    write_npy(folder / "labels.npy", np.arange(5, dtype=np.int64))
    with pytest.raises(ValueError, match=str(folder)):
        PreparedDataset(folder)


@pytest.mark.parametrize("world", [2, 4])
def test_ranks_batch_shares_hold_one_process_whole_batches(split, world):
    """Five samples in batches of 2: rank r's batches are one process's batches r, r + W, … (rank 3 of 4: none),
    with their images' masks and their sample indices."""
    folder, masks = split[0], split[2]
    samples = SampleTensors(folder, np.array([5, 0, 3, 1, 4]))            # a subset: positions differ from indices
    whole = [labels.tolist() for _, _, labels in samples.batches(2, torch.device("cpu"), "foreground")]
    assert whole == [[5, 0], [3, 1], [4]]
    for rank in range(world):
        share = samples.batch_share(2, rank, world)
        batches = [(labels.tolist(), mask.sum().item()) for _, mask, labels in share.batches(2, torch.device("cpu"), "foreground")]
        assert [labels for labels, _ in batches] == whole[rank::world]
        assert share.indices.tolist() == [i for batch in whole[rank::world] for i in batch]
        assert [area for _, area in batches] == [sum(int(masks[i].sum()) for i in b) for b in whole[rank::world]]

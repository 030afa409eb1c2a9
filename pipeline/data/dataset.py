"""A torch Dataset over a prepared split (memory-mapped .npy) with joint image+mask augmentation."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from pipeline.config import Augment

if TYPE_CHECKING:
    import albumentations


def build_augmentation(cfg: Augment) -> albumentations.Compose:
    """Geometric transforms move the image and its masks together (nearest-neighbour for the masks, which
    `PreparedDataset` passes as one 2-channel mask: a third of the per-sample cost saved); photometric ones move
    the image only. albumentations is imported here: the evaluation stages, which never augment, skip its 0.7 s
    import."""
    import albumentations as A

    return A.Compose(
        [
            A.HorizontalFlip(p=cfg.hflip),
            A.Affine(translate_percent=(-cfg.shift, cfg.shift), scale=(1 - cfg.scale, 1 + cfg.scale),
                     rotate=(-cfg.rotate_deg, cfg.rotate_deg), fill=0, fill_mask=0, p=1.0),
            A.RandomBrightnessContrast(brightness_limit=cfg.brightness_contrast,
                                       contrast_limit=cfg.brightness_contrast, p=1.0),
        ],
        additional_targets={"random_mask": "mask"},
    )


def sample_seed(epoch_seed: int, index: int) -> int:
    """The seed of one sample's random draws in one epoch: a function of (epoch seed, sample index) only, so one
    process, DataLoader workers and data-parallel ranks draw the same augmentation and start for each sample."""
    return int(np.random.SeedSequence([epoch_seed, int(index)]).generate_state(1)[0])


class PreparedDataset(Dataset):
    """Samples of `data/prepare/<ds>/<split>/` as (image 3×S×S float in [0,1], mask 1×S×S, random mask, label,
    start noise 3×S×S standard normal: a training attack's random start, pipeline/attacks/base.py).

    An item is asked for by its position, or by (position, epoch seed) (pipeline/train/sharding.py): the
    augmentation and the start noise are then seeded by (epoch seed, sample index) alone (`sample_seed`), whatever
    process draws them. `keep`: the sample indices served (default all of them), e.g. a training split without its
    held-out part."""

    def __init__(self, folder: Path, augment: Augment | None = None, keep: np.ndarray | None = None):
        folder = Path(folder)
        self.images = np.load(folder / "images.npy", mmap_mode="r")
        self.masks = np.load(folder / "masks.npy", mmap_mode="r")
        self.random_masks = np.load(folder / "random_masks.npy", mmap_mode="r")
        self.labels = np.load(folder / "labels.npy")
        if not len(self.images) == len(self.masks) == len(self.random_masks) == len(self.labels):
            raise ValueError(f"{folder}: images, masks, random_masks and labels differ in length")
        self.keep = np.arange(len(self.labels)) if keep is None else np.asarray(keep)
        self.transform = build_augmentation(augment) if augment is not None else None

    def __len__(self) -> int:
        return len(self.keep)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int,
                                                                torch.Tensor]:
        position, epoch_seed = key if isinstance(key, tuple) else (key, 0)
        index = self.keep[position]
        seed = sample_seed(epoch_seed, index)
        image, mask, random = np.array(self.images[index]), np.array(self.masks[index]), np.array(self.random_masks[index])
        if self.transform is not None:
            self.transform.set_random_seed(seed)
            out = self.transform(image=image, mask=np.stack([mask, random], -1))
            image, mask, random = out["image"], out["mask"][..., 0], out["mask"][..., 1]
        image_tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255
        start_noise = torch.randn(image_tensor.shape, generator=torch.Generator().manual_seed(seed))
        return image_tensor, _mask_tensor(mask), _mask_tensor(random), int(self.labels[index]), start_noise


def _mask_tensor(mask: np.ndarray) -> torch.Tensor:
    """H×W 0/1 array as a 1×H×W float tensor."""
    return torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None]


class SampleTensors:
    """A whole prepared split as uint8 tensors, served in float batches (evaluation: no augmentation)."""

    def __init__(self, folder: Path, indices: np.ndarray | None = None):
        data = PreparedDataset(folder)
        keep = np.arange(len(data)) if indices is None else np.asarray(indices)
        self.images = torch.from_numpy(np.ascontiguousarray(data.images[keep])).permute(0, 3, 1, 2)
        self.masks = torch.from_numpy(np.ascontiguousarray(data.masks[keep]))[:, None]
        self.random_masks = torch.from_numpy(np.ascontiguousarray(data.random_masks[keep]))[:, None]
        self.labels = torch.from_numpy(data.labels[keep])
        self.indices = keep

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, batch_size: int, device: torch.device, mask_mode: str):
        """Yield (images in [0, 1], model mask or None, labels) on `device`; see `model_mask` for `mask_mode`."""
        for start in range(0, len(self), batch_size):
            part = slice(start, start + batch_size)
            images = self.images[part].to(device).float() / 255
            mask = model_mask(mask_mode, self.masks[part], self.random_masks[part])
            yield images, None if mask is None else mask.to(device).float(), self.labels[part].to(device)

    def batch_share(self, batch_size: int, rank: int, world: int) -> SampleTensors:
        """Rank `rank`'s share of W = `world` ranks (torchrun): the samples of this set's batches k ≡ rank (mod W) of
        `batch_size`. The batches stay whole, so the share's own batches of `batch_size` are exactly those batches."""
        if world == 1:
            return self
        positions = np.arange(len(self))
        rows = positions[positions // batch_size % world == rank]
        share, taken = copy.copy(self), torch.from_numpy(rows)
        share.images, share.masks, share.random_masks, share.labels = (
            tensor[taken] for tensor in (self.images, self.masks, self.random_masks, self.labels))
        share.indices = self.indices[rows]
        return share


def seeded_subset(count: int, size: int, seed: int) -> np.ndarray:
    """A fixed, sorted random subset of `size` of `count` sample indices (all of them if size ≥ count)."""
    return np.sort(np.random.default_rng(seed).permutation(count)[:size])


def model_mask(mode: str, mask: torch.Tensor, random_mask: torch.Tensor) -> torch.Tensor | None:
    """The mask a classifier of mask mode none | foreground | random gets (methods.md P1)."""
    return {"none": None, "foreground": mask, "random": random_mask}[mode]


def channel_stats(images: np.ndarray, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of N×H×W×3 uint8 images, in [0, 1] units."""
    total = np.zeros(3)
    squares = np.zeros(3)
    for start in range(0, len(images), chunk):
        part = images[start:start + chunk].reshape(-1, 3).astype(np.float64) / 255
        total += part.sum(0)
        squares += (part ** 2).sum(0)
    count = len(images) * images.shape[1] * images.shape[2]
    mean = total / count
    return mean.tolist(), np.sqrt(np.maximum(squares / count - mean ** 2, 1e-12)).tolist()

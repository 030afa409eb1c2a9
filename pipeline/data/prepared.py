"""The prepared-split format shared by every dataset: arrays, per-sample index and meta."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.io.atomic import write_json, write_npy

SPLITS = ("train", "val")


@dataclass
class PreparedSplit:
    """One split in memory: images N×S×S×3 uint8, masks N×S×S uint8 0/1, labels N int64."""

    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    records: list[dict]
    class_names: list[str]
    skipped: list[dict]

    @classmethod
    def from_samples(cls, samples: list[tuple[np.ndarray, np.ndarray, int, dict]], size: int,
                     class_names: list[str], skipped: list[dict]) -> PreparedSplit:
        if not samples:
            return cls(np.zeros((0, size, size, 3), np.uint8), np.zeros((0, size, size), np.uint8),
                       np.zeros(0, np.int64), [], class_names, skipped)
        images, masks, labels, records = zip(*samples)
        return cls(np.stack(images), np.stack(masks).astype(np.uint8), np.asarray(labels, np.int64),
                   list(records), class_names, skipped)

    def meta(self) -> dict:
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        coverage = float(self.masks.mean()) if len(self.masks) else 0.0
        return {"num_samples": len(self.labels), "image_size": int(self.images.shape[1]),
                "class_names": self.class_names,
                "counts_per_class": {name: int(c) for name, c in zip(self.class_names, counts)},
                "mean_mask_coverage": coverage, "num_skipped": len(self.skipped), "skipped": self.skipped}

    def write(self, folder: Path, random_masks: np.ndarray, random_mask_mode: str) -> dict:
        """Write images/masks/random_masks/labels .npy, index.json and meta.json atomically; return the meta."""
        write_npy(folder / "images.npy", self.images)
        write_npy(folder / "masks.npy", self.masks)
        write_npy(folder / "random_masks.npy", random_masks)
        write_npy(folder / "labels.npy", self.labels)
        write_json(folder / "index.json", self.records)
        meta = {**self.meta(), "random_mask": random_mask_mode}
        write_json(folder / "meta.json", meta)
        return meta


def subsample(items: list, cap: int | None, rng: np.random.Generator) -> list:
    """A seeded random subset of at most `cap` items, kept in their original order."""
    if cap is None or len(items) <= cap:
        return items
    keep = np.sort(rng.choice(len(items), size=cap, replace=False))
    return [items[i] for i in keep]

"""Decoding source images and resizing image/mask pairs to the prepared size."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

from pipeline.errors import InputError
from pipeline.io.archive import SafeZip

log = logging.getLogger(__name__)


class TooManyCorruptImagesError(InputError):
    """More source images failed to decode than `prepare.max_corrupt_share` allows."""


@dataclass
class SkipLog:
    """Source images that could not be used, each with the reason; fails past a share of the total."""

    dataset: str
    skipped: list[dict] = field(default_factory=list)

    def add(self, name: str, reason: str) -> None:
        log.warning("%s: skipping %s (%s)", self.dataset, name, reason)
        self.skipped.append({"file": name, "reason": reason})

    def read_rgb(self, archive: SafeZip, member: str) -> np.ndarray | None:
        """The member decoded to RGB, or None (logged and counted) if it is missing or unreadable."""
        try:
            return decode_rgb(archive.read(member))
        except (OSError, KeyError, ValueError) as exc:
            self.add(member, str(exc))
            return None

    def check(self, total: int, max_share: float) -> None:
        share = len(self.skipped) / max(total, 1)
        if share > max_share:
            names = ", ".join(s["file"] for s in self.skipped[:5])
            raise TooManyCorruptImagesError(
                f"{self.dataset}: {len(self.skipped)} of {total} images unreadable ({share:.1%}, more than "
                f"prepare.max_corrupt_share = {max_share:.1%}); first: {names}")


def decode_rgb(data: bytes) -> np.ndarray:
    """H×W×3 uint8 RGB from encoded bytes (grayscale, palette and CMYK are converted); raises OSError."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return np.asarray(image.convert("RGB"))


def resize_pair(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Image with area interpolation, mask with nearest neighbour, both to size×size."""
    resized_image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    resized_mask = cv2.resize(mask.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
    return resized_image, resized_mask

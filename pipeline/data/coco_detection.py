"""COCO 2017 detection images and boxes read straight from the official archives (the DETR part of methods.md P4).

A split is `<split>2017.zip` with `annotations/instances_<split>2017.json` of annotations_trainval2017.zip.
Images stay at their original size as uint8 (the detector resizes them, differentiably); a DETR target holds
the image's non-crowd boxes as normalised (cx, cy, w, h), as DETR trains (crowds only matter to COCOeval,
which gets the full instances JSON). An unreadable image is skipped, named and counted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from pipeline.data.coco_ic import load_instances
from pipeline.data.images import SkipLog, decode_rgb
from pipeline.errors import InputError
from pipeline.evaluation.coco_map import xywh_to_cxcywh
from pipeline.io.archive import SafeZip
from pipeline.models.detr import UNUSED_LABEL


@dataclass(frozen=True)
class DetectionRecord:
    """One image of a split without its pixels: where it lies in the archive and what is annotated on it."""

    image_id: int
    member: str                      # `<split>2017/<file_name>` in `<split>2017.zip`
    height: int
    width: int
    boxes: torch.Tensor              # K×4 normalised (cx, cy, w, h) of the non-crowd annotations
    category_ids: torch.Tensor       # K long: COCO category ids

    @property
    def size(self) -> tuple[int, int]:
        return self.height, self.width

    def read(self, archive: SafeZip) -> torch.Tensor:
        """3×H×W uint8 pixels; raises InputError (no such member), OSError or ValueError (unreadable, or not the
        annotated size)."""
        pixels = decode_rgb(archive.read(self.member))
        if pixels.shape[:2] != self.size:
            raise ValueError(f"size {pixels.shape[1]}x{pixels.shape[0]} differs from the annotation's "
                             f"{self.width}x{self.height}")
        return torch.from_numpy(pixels.copy()).permute(2, 0, 1)


@dataclass
class DetectionImage:
    image_id: int
    pixels: torch.Tensor             # 3×H×W uint8, original size
    boxes: torch.Tensor              # K×4 normalised (cx, cy, w, h) of the non-crowd annotations
    category_ids: torch.Tensor       # K long: COCO category ids

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.pixels.shape[-2:])

    def as_float(self) -> torch.Tensor:
        return self.pixels.float() / 255


@dataclass
class DetectionIndex:
    instances: dict                  # the split's instances JSON, for pycocotools
    archive: Path                    # `<split>2017.zip`
    records: list[DetectionRecord]


@dataclass
class DetectionSplit:
    instances: dict                  # the split's instances JSON, for pycocotools
    images: list[DetectionImage]
    skipped: list[dict]


def select_images(instances: dict, limit: int | None, seed: int) -> list[dict]:
    """The split's image records by id, or a seeded subset of `limit` of them (sorted by id)."""
    records = sorted(instances["images"], key=lambda image: image["id"])
    if limit is None or limit >= len(records):
        return records
    chosen = np.random.default_rng(seed).choice(len(records), size=limit, replace=False)
    return [records[i] for i in sorted(chosen)]


def load_detection_index(folder: Path, split: str, limit: int | None, seed: int) -> DetectionIndex:
    """The annotations of `split` (train | val) in `folder`'s COCO archives, every image or a seeded subset of
    `limit`, without decoding any image."""
    folder = Path(folder)
    with SafeZip(folder / "annotations_trainval2017.zip") as annotations:
        instances = load_instances(annotations, split)
    by_image: dict[int, list[dict]] = {}
    for ann in instances["annotations"]:
        if not ann.get("iscrowd", 0):
            by_image.setdefault(ann["image_id"], []).append(ann)
    records = []
    for image in select_images(instances, limit, seed):
        anns = by_image.get(image["id"], [])
        boxes = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
        records.append(DetectionRecord(image["id"], f"{split}2017/{image['file_name']}", image["height"],
                                       image["width"], xywh_to_cxcywh(boxes, image["width"], image["height"]),
                                       torch.tensor([a["category_id"] for a in anns], dtype=torch.long)))
    return DetectionIndex(instances, folder / f"{split}2017.zip", records)


def load_detection_split(folder: Path, split: str, limit: int | None, seed: int,
                         max_corrupt_share: float) -> DetectionSplit:
    """`split` of the COCO archives in `folder` decoded into memory (every image, or a seeded subset of `limit`):
    for the few hundred images an attack uses; training streams them (ArchiveImages)."""
    index = load_detection_index(folder, split, limit, seed)
    skips, images = SkipLog(f"coco/{split}"), []
    with SafeZip(index.archive) as archive:
        for record in tqdm(index.records, desc=f"COCO {split}2017", unit="img", leave=False):
            try:
                pixels = record.read(archive)
            except (OSError, ValueError) as exc:
                skips.add(record.member, str(exc))
                continue
            images.append(DetectionImage(record.image_id, pixels, record.boxes, record.category_ids))
    skips.check(len(index.records), max_corrupt_share)
    return DetectionSplit(index.instances, images, skips.skipped)


class StreamedImage(NamedTuple):
    position: int                    # index in the dataset
    member: str                      # its name, for the skip log
    pixels: torch.Tensor | None      # 3×H×W uint8, None when unreadable
    problem: str                     # why it is unreadable ("" otherwise)


class ArchiveImages(Dataset):
    """The images of an index read from the archive one at a time (in DataLoader workers too: each process opens
    its own handle), so a training split never sits in memory; an unreadable image comes back with its reason."""

    def __init__(self, index: DetectionIndex):
        self.archive_path, self.records = index.archive, index.records
        self._archive: SafeZip | None = None
        self._pid = -1

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, position: int) -> StreamedImage:
        if self._archive is None or self._pid != os.getpid():      # a forked worker must not share the parent's
            self._archive, self._pid = SafeZip(self.archive_path), os.getpid()
        record = self.records[position]
        try:
            return StreamedImage(position, record.member, record.read(self._archive), "")
        except (OSError, ValueError) as exc:
            return StreamedImage(position, record.member, None, str(exc))

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_archive": None, "_pid": -1}


def readable_images(batch: list[StreamedImage], skips: SkipLog, total: int, max_share: float) -> list[StreamedImage]:
    """The images of a streamed batch that decoded; each unreadable one is logged once in `skips`, which fails as
    soon as more than `max_share` of the `total` images are unreadable."""
    for image in batch:
        if image.pixels is None and all(skipped["file"] != image.member for skipped in skips.skipped):
            skips.add(image.member, image.problem)              # once, though every epoch meets it again
    skips.check(total, max_share)
    return [image for image in batch if image.pixels is not None]


def label_map(class_names: list[str], categories: list[dict]) -> dict[int, int]:
    """Model label index → COCO category id, matched by name; "N/A" slots map to nothing, and any other name the
    annotation file lacks is an error (its detections could not be scored)."""
    id_of = {c["name"]: c["id"] for c in categories}
    unknown = sorted({name for name in class_names if name not in id_of and name != UNUSED_LABEL})
    if unknown:
        raise InputError(f"model labels {unknown} are not categories of the annotation file (have {sorted(id_of)})")
    return {index: id_of[name] for index, name in enumerate(class_names) if name in id_of}


def training_targets(image: DetectionImage | DetectionRecord, label_of_category: dict[int, int]) -> dict:
    """The DETR target of one image: class indices of the model and normalised boxes (categories the model lacks and
    boxes of zero width or height are left out)."""
    keep = torch.tensor([int(c) in label_of_category for c in image.category_ids], dtype=torch.bool)
    keep &= (image.boxes[:, 2] > 0) & (image.boxes[:, 3] > 0)          # as DETR's data code, no empty boxes
    labels = torch.tensor([label_of_category[int(c)] for c in image.category_ids[keep]], dtype=torch.long)
    return {"class_labels": labels, "boxes": image.boxes[keep]}


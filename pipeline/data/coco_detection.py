"""COCO 2017 detection images and boxes read straight from the official archives (the DETR part of methods.md P4).

A split is `<split>2017.zip` with `annotations/instances_<split>2017.json` of annotations_trainval2017.zip.
Images stay at their original size as uint8 (the detector resizes them, differentiably); a DETR target holds
the image's non-crowd boxes as normalised (cx, cy, w, h), as DETR trains (crowds only matter to COCOeval,
which gets the full instances JSON). An unreadable image is skipped, named and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pipeline.data.coco_ic import load_instances
from pipeline.data.images import SkipLog
from pipeline.errors import InputError
from pipeline.evaluation.coco_map import xywh_to_cxcywh
from pipeline.io.archive import SafeZip
from pipeline.models.detr import UNUSED_LABEL


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


def load_detection_split(folder: Path, split: str, limit: int | None, seed: int,
                         max_corrupt_share: float) -> DetectionSplit:
    """`split` (train | val) of the COCO archives in `folder`: every image, or a seeded subset of `limit`."""
    folder = Path(folder)
    with SafeZip(folder / "annotations_trainval2017.zip") as annotations:
        instances = load_instances(annotations, split)
    by_image: dict[int, list[dict]] = {}
    for ann in instances["annotations"]:
        if not ann.get("iscrowd", 0):
            by_image.setdefault(ann["image_id"], []).append(ann)
    records = select_images(instances, limit, seed)
    skips, images = SkipLog(f"coco/{split}"), []
    with SafeZip(folder / f"{split}2017.zip") as archive:
        for record in tqdm(records, desc=f"COCO {split}2017", unit="img", leave=False):
            member = f"{split}2017/{record['file_name']}"
            pixels = skips.read_rgb(archive, member)
            if pixels is None:
                continue
            if pixels.shape[:2] != (record["height"], record["width"]):
                skips.add(member, f"size {pixels.shape[1]}x{pixels.shape[0]} differs from the annotation's "
                                  f"{record['width']}x{record['height']}")
                continue
            anns = by_image.get(record["id"], [])
            boxes = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
            images.append(DetectionImage(record["id"], torch.from_numpy(pixels.copy()).permute(2, 0, 1),
                                         xywh_to_cxcywh(boxes, record["width"], record["height"]),
                                         torch.tensor([a["category_id"] for a in anns], dtype=torch.long)))
    skips.check(len(records), max_corrupt_share)
    return DetectionSplit(instances, images, skips.skipped)


def label_map(class_names: list[str], categories: list[dict]) -> dict[int, int]:
    """Model label index → COCO category id, matched by name; "N/A" slots map to nothing, and any other name the
    annotation file lacks is an error (its detections could not be scored)."""
    id_of = {c["name"]: c["id"] for c in categories}
    unknown = sorted({name for name in class_names if name not in id_of and name != UNUSED_LABEL})
    if unknown:
        raise InputError(f"model labels {unknown} are not categories of the annotation file (have {sorted(id_of)})")
    return {index: id_of[name] for index, name in enumerate(class_names) if name in id_of}


def training_targets(image: DetectionImage, label_of_category: dict[int, int]) -> dict:
    """The DETR target of one image: class indices of the model and normalised boxes (categories the model lacks and
    boxes of zero width or height are left out)."""
    keep = torch.tensor([int(c) in label_of_category for c in image.category_ids], dtype=torch.bool)
    keep &= (image.boxes[:, 2] > 0) & (image.boxes[:, 3] > 0)          # as DETR's data code, no empty boxes
    labels = torch.tensor([label_of_category[int(c)] for c in image.category_ids[keep]], dtype=torch.long)
    return {"class_labels": labels, "boxes": image.boxes[keep]}


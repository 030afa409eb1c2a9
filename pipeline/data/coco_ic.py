"""MS-COCO-IC: one classification sample per COCO instance, with its foreground mask (methods.md P1).

Crop = the instance bbox made square with a margin on every side (side = max(w, h)·(1 + 2·margin)),
centred on the bbox and clipped to the image; instances are kept when not crowd, of area ≥ min_area,
and no instance of a *different* kept category covers more than `max_other_overlap` of the crop.
The mask is the instance's segmentation (or, with mask_scope=category, the union of its category's
annotations) decoded by pycocotools inside the crop.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils
from tqdm import tqdm

from pipeline.config import CocoIcPrepare
from pipeline.data.images import SkipLog, resize_pair
from pipeline.data.prepared import PreparedSplit, subsample
from pipeline.errors import InputError
from pipeline.io.archive import SafeZip

CropBox = tuple[int, int, int, int]  # x0, y0, x1, y1, half-open, source pixels


# The fields of COCO's `instances` format this project reads, per section.
REQUIRED_FIELDS = {"images": ("id", "file_name", "width", "height"),
                   "annotations": ("id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation"),
                   "categories": ("id", "name")}


def load_instances(annotations: SafeZip, split: str) -> dict:
    """`annotations/instances_<split>2017.json`, checked for the fields this project reads: a malformed record is
    named (section, index, id) instead of failing later as a KeyError."""
    name = f"annotations/instances_{split}2017.json"
    where = f"{annotations.path}:{name}"
    try:
        instances = json.loads(annotations.read(name))
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON ({exc})") from exc
    for section, fields in REQUIRED_FIELDS.items():
        records = instances.get(section) if isinstance(instances, dict) else None
        if not isinstance(records, list):
            raise InputError(f"{where}: no `{section}` list (is it a COCO instances file?)")
        for index, record in enumerate(records):
            missing = [key for key in fields if key not in record] if isinstance(record, dict) else list(fields)
            if missing:
                record_id = record.get("id") if isinstance(record, dict) else None
                raise InputError(f"{where}: {section}[{index}] (id {record_id}) lacks {', '.join(missing)}; every "
                                 f"record of `{section}` needs {', '.join(fields)} (the COCO instances format)")
    image_ids = {image["id"] for image in instances["images"]}
    orphan = next((a for a in instances["annotations"] if a["image_id"] not in image_ids), None)
    if orphan is not None:
        raise InputError(f"{where}: annotation id {orphan['id']} refers to image_id {orphan['image_id']}, "
                         f"which `images` lacks")
    return instances


def select_categories(train: dict, cfg: CocoIcPrepare) -> list[dict]:
    """The categories to classify: `cfg.categories` by name, else the most frequent non-crowd ones."""
    by_name = {c["name"]: c for c in train["categories"]}
    if cfg.categories is not None:
        unknown = [name for name in cfg.categories if name not in by_name]
        if unknown:
            raise InputError(f"prepare.coco_ic.categories: unknown COCO categories {unknown}")
        return [by_name[name] for name in cfg.categories]
    counts = Counter(a["category_id"] for a in train["annotations"] if not a["iscrowd"])
    ranked = sorted(counts, key=lambda cid: (-counts[cid], cid))
    if len(ranked) < cfg.num_categories:
        raise InputError(f"prepare.coco_ic.num_categories = {cfg.num_categories}, but the train annotations "
                         f"hold only {len(ranked)} categories")
    by_id = {c["id"]: c for c in train["categories"]}
    return [by_id[cid] for cid in ranked[: cfg.num_categories]]


def square_crop(bbox: list[float], margin: float, width: int, height: int) -> CropBox:
    x, y, w, h = bbox
    side = max(w, h) * (1 + 2 * margin)
    cx, cy = x + w / 2, y + h / 2
    return (max(0, math.floor(cx - side / 2)), max(0, math.floor(cy - side / 2)),
            min(width, math.ceil(cx + side / 2)), min(height, math.ceil(cy + side / 2)))


def segmentation_rle(segmentation: list | dict, height: int, width: int) -> dict:
    """Compressed RLE of a polygon list, uncompressed-RLE or compressed-RLE segmentation (pycocotools)."""
    if isinstance(segmentation, list):
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    if isinstance(segmentation["counts"], list):
        return mask_utils.frPyObjects(segmentation, height, width)
    return segmentation


def annotation_mask(ann: dict, height: int, width: int) -> np.ndarray:
    """H×W uint8 mask of an annotation's segmentation."""
    return mask_utils.decode(segmentation_rle(ann["segmentation"], height, width))


def _box_overlap(bbox: list[float], crop: CropBox) -> float:
    x, y, w, h = bbox
    return max(0.0, min(x + w, crop[2]) - max(x, crop[0])) * max(0.0, min(y + h, crop[3]) - max(y, crop[1]))


@dataclass(frozen=True)
class Candidate:
    ann: dict
    image: dict
    crop: CropBox


def kept_by_image(dataset: dict, kept_ids: set[int]) -> dict[int, list[dict]]:
    """Annotations (crowds included) of the kept categories, grouped by image id."""
    by_image = defaultdict(list)
    for ann in dataset["annotations"]:
        if ann["category_id"] in kept_ids:
            by_image[ann["image_id"]].append(ann)
    return by_image


def find_candidates(dataset: dict, by_image: dict[int, list[dict]], kept_ids: set[int],
                    cfg: CocoIcPrepare) -> list[Candidate]:
    """Instances that pass the area, crowd and other-category-overlap filters, in annotation order."""
    images = {img["id"]: img for img in dataset["images"]}
    found = []
    for ann in dataset["annotations"]:
        if ann["category_id"] not in kept_ids or ann["iscrowd"] or ann["area"] < cfg.min_area:
            continue
        image = images[ann["image_id"]]
        crop = square_crop(ann["bbox"], cfg.bbox_margin, image["width"], image["height"])
        limit = cfg.max_other_overlap * (crop[2] - crop[0]) * (crop[3] - crop[1])
        if not any(_covers(other, crop, image, limit) for other in by_image[ann["image_id"]]
                   if other["category_id"] != ann["category_id"]):
            found.append(Candidate(ann, image, crop))
    return found


def _covers(other: dict, crop: CropBox, image: dict, limit: float) -> bool:
    """Does `other`'s mask cover more than `limit` pixels of the crop? (bbox bound first, then decode)"""
    if _box_overlap(other["bbox"], crop) <= limit:
        return False
    mask = annotation_mask(other, image["height"], image["width"])
    return float(mask[crop[1]:crop[3], crop[0]:crop[2]].sum()) > limit


def build_split(annotations: SafeZip, images: SafeZip, split: str, categories: list[dict], cfg: CocoIcPrepare,
                rng: np.random.Generator, max_corrupt_share: float) -> PreparedSplit:
    """Every kept instance of `split` as a crop, its mask and its label index into `categories`."""
    dataset = load_instances(annotations, split)
    label_of = {c["id"]: index for index, c in enumerate(categories)}
    kept = kept_by_image(dataset, set(label_of))
    candidates = subsample(find_candidates(dataset, kept, set(label_of), cfg), getattr(cfg.max_samples, split), rng)
    by_image = defaultdict(list)
    for candidate in candidates:
        by_image[candidate.image["id"]].append(candidate)

    skips, samples = SkipLog(f"coco_ic/{split}"), []
    for image_candidates in tqdm(by_image.values(), desc=f"COCO-IC {split}", unit="img"):
        image = image_candidates[0].image
        member = f"{split}2017/{image['file_name']}"
        pixels = skips.read_rgb(images, member)
        if pixels is None:
            continue
        height, width = pixels.shape[:2]
        if (height, width) != (image["height"], image["width"]):
            skips.add(member, f"size {width}x{height} differs from the annotation's {image['width']}x{image['height']}")
            continue
        for candidate in image_candidates:
            ann = candidate.ann
            scope = [ann] if cfg.mask_scope == "instance" else [
                other for other in kept[image["id"]] if other["category_id"] == ann["category_id"]]
            mask = np.maximum.reduce([annotation_mask(a, height, width) for a in scope])
            x0, y0, x1, y1 = candidate.crop
            crop_image, crop_mask = resize_pair(pixels[y0:y1, x0:x1], mask[y0:y1, x0:x1], cfg.image_size)
            record = {"source_file": member, "image_id": image["id"], "annotation_id": ann["id"],
                      "crop_box": list(candidate.crop), "class_name": categories[label_of[ann["category_id"]]]["name"]}
            samples.append((crop_image, crop_mask, label_of[ann["category_id"]], record))
    skips.check(len(by_image), max_corrupt_share)
    return PreparedSplit.from_samples(samples, cfg.image_size, [c["name"] for c in categories], skips.skipped)

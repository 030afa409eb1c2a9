"""Synthetic COCO 2017: train2017.zip, val2017.zip and annotations_trainval2017.zip, official layout.

Images are JPEGs of varied sizes (some grayscale) with a cluttered background and several textured
objects from 12 categories (official names and ids; frequencies differ so "the 10 most frequent" is
well defined). A category is its outline and texture pattern; its colour is drawn per instance from a
palette all categories share, so, as in COCO, colour alone does not name the class. Objects overlap; each annotation is the polygon outline of the object's *visible*
pixels; some images hold a crowd of small objects annotated once as `iscrowd: 1` uncompressed RLE.
bbox and area are those of the annotation's own decoded mask, as in COCO.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils
from tqdm import tqdm

from pipeline.config import SyntheticCoco
from pipeline.data.coco_categories import COCO_CATEGORIES, COCO_ID_BY_NAME
from pipeline.data.coco_ic import segmentation_rle
from pipeline.data.textures import cluttered_background, relight, textured_fill
from pipeline.io.archive import add_member
from pipeline.io.atomic import atomic_path


@dataclass(frozen=True)
class Look:
    """How a synthetic category is drawn: outline, texture, and how often it appears."""

    outline: str
    pattern: str
    weight: float


LOOKS = {
    "person": Look("person", "solid", 12),
    "car": Look("car", "hstripes", 11),
    "chair": Look("chair", "vstripes", 10),
    "bottle": Look("bottle", "solid", 9),
    "cup": Look("cup", "dots", 8),
    "bird": Look("triangle", "diagonal", 7),
    "dog": Look("ellipse", "checker", 6),
    "cat": Look("star", "hstripes", 5),
    "bicycle": Look("ring", "solid", 4.5),
    "truck": Look("rect", "checker", 4),
    "stop sign": Look("octagon", "solid", 1),
    "umbrella": Look("crescent", "dots", 1),
}
PALETTE = ((220, 170, 130), (200, 30, 30), (140, 90, 40), (40, 160, 60), (240, 240, 240), (60, 110, 220),
           (170, 120, 60), (250, 160, 30), (60, 60, 60), (230, 220, 40), (150, 40, 170), (40, 200, 200))
MIN_VISIBLE_PX = 40
PLACEMENT_TRIES = 20


def _regular(n: int, phase: float = 0.0) -> np.ndarray:
    angles = phase + np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([np.cos(angles), np.sin(angles)], 1)


def _outline_parts(outline: str) -> list[tuple[np.ndarray, int]]:
    """The outline as (unit polygon in [-1, 1]², value) strokes: value 1 adds area, 0 cuts it."""
    star = _regular(10, -np.pi / 2) * np.where(np.arange(10) % 2 == 0, 1.0, 0.45)[:, None]
    parts = {
        "person": [(_regular(24) * [0.45, 0.6] + [0, 0.35], 1), (_regular(24) * 0.3 + [0, -0.65], 1)],
        "car": [(np.array([[-1, 0.5], [-1, -0.1], [-0.5, -0.1], [-0.3, -0.6], [0.4, -0.6], [0.6, -0.1],
                           [1, -0.1], [1, 0.5]]), 1)],
        "chair": [(np.array([[-0.6, -1], [-0.3, -1], [-0.3, 0], [0.6, 0], [0.6, 1], [0.35, 1], [0.35, 0.3],
                             [-0.35, 0.3], [-0.35, 1], [-0.6, 1]]), 1)],
        "bottle": [(np.array([[-0.15, -1], [0.15, -1], [0.15, -0.45], [0.4, -0.2], [0.4, 1], [-0.4, 1],
                              [-0.4, -0.2], [-0.15, -0.45]]), 1)],
        "cup": [(np.array([[-0.6, -0.6], [0.6, -0.6], [0.45, 0.8], [-0.45, 0.8]]), 1),
                (_regular(16) * 0.25 + [0.75, 0], 1)],
        "triangle": [(np.array([[0, -1], [1, 0.8], [-1, 0.8]]), 1)],
        "ellipse": [(_regular(32) * [1, 0.6], 1)],
        "star": [(star, 1)],
        "ring": [(_regular(32), 1), (_regular(32) * 0.5, 0)],
        "rect": [(np.array([[-1, -0.6], [1, -0.6], [1, 0.6], [-1, 0.6]]), 1)],
        "octagon": [(_regular(8, np.pi / 8), 1)],
        "crescent": [(_regular(32), 1), (_regular(32) * 0.8 + [0.45, -0.2], 0)],
    }
    return parts[outline]


def _object_mask(rng: np.random.Generator, outline: str, height: int, width: int, side: float,
                 centre: tuple[float, float]) -> np.ndarray:
    """Full (unoccluded) H×W bool mask of one object of `outline`, randomly rotated and stretched."""
    angle = rng.uniform(-0.5, 0.5)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    stretch = np.array([rng.uniform(0.8, 1.25), rng.uniform(0.8, 1.25)]) * side / 2
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for polygon, value in _outline_parts(outline):
        points = (polygon * stretch) @ rotation.T + centre
        draw.polygon([tuple(p) for p in points], fill=value)
    return np.asarray(canvas, dtype=bool)


def _polygons(visible: np.ndarray) -> list[list[float]]:
    """Outlines of the visible pixels as COCO polygons (flat x, y lists with at least 3 points)."""
    contours, _ = cv2.findContours(visible.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]


def _annotation(segmentation, height: int, width: int, iscrowd: int) -> tuple[dict, np.ndarray] | None:
    """COCO annotation fields (bbox and area of the decoded segmentation) and the decoded mask."""
    if not segmentation:
        return None
    rle = segmentation_rle(segmentation, height, width)
    area = float(mask_utils.area(rle))
    if area < MIN_VISIBLE_PX:
        return None
    bbox = [float(v) for v in mask_utils.toBbox(rle)]
    fields = {"segmentation": segmentation, "area": area, "iscrowd": iscrowd, "bbox": bbox}
    return fields, mask_utils.decode(rle).astype(bool)


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's crowd format: run lengths over the column-major mask, starting with a run of zeros."""
    flat = mask.T.reshape(-1).astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0, *counts]
    return {"counts": counts, "size": [int(mask.shape[0]), int(mask.shape[1])]}


def _box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """IoU of two (x0, y0, x1, y1) boxes."""
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _mask_box(mask: np.ndarray) -> tuple[float, ...]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1) if len(rows) else (0, 0, 0, 0)


def category_weights(cfg: SyntheticCoco) -> tuple[list[str], np.ndarray]:
    """The categories drawn and their probabilities: all 12 at their COCO-like weights, or `cfg.categories` equally."""
    if cfg.categories is None:
        names = list(LOOKS)
        weights = np.array([LOOKS[n].weight for n in names])
        return names, weights / weights.sum()
    unknown = [name for name in cfg.categories if name not in LOOKS]
    if unknown or len(set(cfg.categories)) != len(cfg.categories):
        raise ValueError(f"download.*.synthetic.categories {cfg.categories}: use distinct names of {list(LOOKS)}")
    return list(cfg.categories), np.full(len(cfg.categories), 1 / len(cfg.categories))


def _place_objects(rng: np.random.Generator, cfg: SyntheticCoco, height: int, width: int) -> list[tuple]:
    """(category name, full mask, iscrowd 0, side in px) per object; an object whose box would overlap an earlier one
    by more than `max_box_iou` is redrawn (up to PLACEMENT_TRIES times, then left out)."""
    names, probabilities = category_weights(cfg)
    count = int(rng.integers(cfg.objects_per_image.min, cfg.objects_per_image.max + 1))
    objects, boxes = [], []
    for name in rng.choice(names, size=count, p=probabilities):
        for _ in range(PLACEMENT_TRIES):
            side = rng.uniform(cfg.object_side.min, cfg.object_side.max) * min(width, height)
            centre = (rng.uniform(side / 3, width - side / 3), rng.uniform(side / 3, height - side / 3))
            full = _object_mask(rng, LOOKS[name].outline, height, width, side, centre)
            box = _mask_box(full)
            if all(_box_iou(box, other) <= cfg.max_box_iou for other in boxes):
                objects.append((str(name), full, 0, side))
                boxes.append(box)
                break
    return objects


def render_image(rng: np.random.Generator, cfg: SyntheticCoco) -> tuple[Image.Image, list[dict]]:
    """One image and its annotations (without ids): objects back to front, then an optional crowd."""
    width, height = (int(rng.integers(cfg.image_side.min, cfg.image_side.max + 1)) for _ in range(2))
    objects = _place_objects(rng, cfg, height, width)
    if rng.random() < cfg.crowd_share:
        name = str(rng.choice(category_weights(cfg)[0][:4]))
        cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
        crowd, side = np.zeros((height, width), bool), min(width, height) * 0.1
        for _ in range(int(rng.integers(4, 9))):
            centre = (cx + rng.normal(0, width / 10), cy + rng.normal(0, height / 10))
            crowd |= _object_mask(rng, LOOKS[name].outline, height, width, side, centre)
        objects.append((name, crowd, 1, side))

    image = cluttered_background(rng, height, width, clutter=int(rng.integers(cfg.clutter.min, cfg.clutter.max + 1)))
    pixels = np.array(image)
    annotations = []
    covered_later = np.zeros((height, width), bool)
    for name, full, iscrowd, side in reversed(objects):  # front to back, so occlusion is known
        visible = full & ~covered_later
        segmentation = _uncompressed_rle(visible) if iscrowd else _polygons(visible)
        annotated = _annotation(segmentation, height, width, iscrowd)
        if annotated is not None:  # paint exactly the decoded annotation, so masks sit on the pixels
            fields, decoded = annotated
            painted = decoded & ~covered_later
            colour = PALETTE[int(rng.integers(len(PALETTE)))]
            period = max(int(side * rng.uniform(0.12, 0.22)), 2)  # texture stays visible once the crop is resized
            texture = textured_fill(rng, height, width, colour, LOOKS[name].pattern, period=period)
            pixels[painted] = texture[painted]
            annotations.append({**fields, "category_id": COCO_ID_BY_NAME[name]})
        covered_later |= full
    image = relight(rng, Image.fromarray(pixels), brightness=(0.6, 1.25), blur_radius=0.8)
    if rng.random() < cfg.grayscale_share:
        image = image.convert("L")
    return image, annotations


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_split(images_dest: Path, split: str, count: int, first_image_id: int, first_ann_id: int,
                cfg: SyntheticCoco, rng: np.random.Generator) -> dict:
    """Write `<split>2017.zip` and return the split's instances JSON (as a dict)."""
    images, annotations = [], []
    with atomic_path(images_dest) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        for index in tqdm(range(count), desc=f"COCO {split}2017", unit="img"):
            image_id = first_image_id + index
            image, image_annotations = render_image(rng, cfg)
            file_name = f"{image_id:012d}.jpg"
            add_member(archive, f"{split}2017/{file_name}", _jpeg(image), compress=False)
            images.append({"license": 1, "file_name": file_name, "coco_url": "", "height": image.height,
                           "width": image.width, "date_captured": "2026-01-01 00:00:00", "flickr_url": "",
                           "id": image_id})
            for ann in image_annotations:
                annotations.append({**ann, "image_id": image_id, "id": first_ann_id + len(annotations)})
    return {
        "info": {"description": "attnrobust synthetic COCO 2017 look-alike", "version": "1.0", "year": 2026,
                 "contributor": "attnrobust", "date_created": "2026-01-01"},
        "licenses": [{"url": "", "id": 1, "name": "synthetic"}],
        "images": images,
        "annotations": annotations,
        "categories": COCO_CATEGORIES,
    }


def write_synthetic_coco(folder: Path, cfg: SyntheticCoco, seed: int) -> None:
    """All three COCO 2017 archives under their official names in `folder`."""
    instances = {}
    for offset, (split, count) in enumerate((("train", cfg.train_images), ("val", cfg.val_images))):
        rng = np.random.default_rng([seed, offset])
        instances[split] = write_split(folder / f"{split}2017.zip", split, count, first_image_id=1 + offset * 10**6,
                                       first_ann_id=1 + offset * 10**7, cfg=cfg, rng=rng)
    with atomic_path(folder / "annotations_trainval2017.zip") as tmp, zipfile.ZipFile(tmp, "w") as archive:
        for split, dataset in instances.items():
            add_member(archive, f"annotations/instances_{split}2017.json", json.dumps(dataset))

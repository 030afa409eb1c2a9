"""COCO box mAP for the DETR patch attack (Lovisotto et al., CVPR 2022, "Give me your attention", Table 4).

Every number comes from pycocotools' COCOeval (iouType "bbox"); this module only converts boxes and prepares its
inputs, including the paper's rule that boxes with more than half of their area inside the patch are ignored.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging

import numpy as np
import torch

log = logging.getLogger(__name__)

STAT_NAMES = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
              "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large")

Boxes = torch.Tensor | np.ndarray


def _stack(like: Boxes, columns: list) -> Boxes:
    return torch.stack(columns, dim=-1) if isinstance(like, torch.Tensor) else np.stack(columns, axis=-1)


def xywh_to_cxcywh(boxes: Boxes, width: float, height: float) -> Boxes:
    """Absolute COCO [x, y, w, h] → [cx, cy, w, h] normalised by the image size (DETR's training targets)."""
    x, y, w, h = (boxes[..., i] for i in range(4))
    return _stack(boxes, [(x + w / 2) / width, (y + h / 2) / height, w / width, h / height])


def cxcywh_to_xywh(boxes: Boxes, width: float, height: float) -> Boxes:
    """Normalised [cx, cy, w, h] (DETR's pred_boxes) → absolute COCO [x, y, w, h]; inverse of xywh_to_cxcywh."""
    cx, cy, w, h = (boxes[..., i] for i in range(4))
    return _stack(boxes, [(cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height])


def xyxy_to_xywh(boxes: Boxes) -> Boxes:
    """Absolute [x0, y0, x1, y1] (transformers' post_process_object_detection) → COCO results [x, y, w, h]."""
    x0, y0, x1, y1 = (boxes[..., i] for i in range(4))
    return _stack(boxes, [x0, y0, x1 - x0, y1 - y0])


def inside_share(boxes_xywh, region_xywh) -> np.ndarray:
    """Share of each box's own area that lies inside the region [x, y, w, h]; 0 for a zero-area box."""
    boxes = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    rx, ry, rw, rh = (float(v) for v in np.asarray(region_xywh, dtype=np.float64).reshape(4))
    x, y, w, h = boxes.T
    ix = np.clip(np.minimum(x + w, rx + rw) - np.maximum(x, rx), 0, None)
    iy = np.clip(np.minimum(y + h, ry + rh) - np.maximum(y, ry), 0, None)
    area = w * h
    return np.divide(ix * iy, area, out=np.zeros_like(area), where=area > 0)


def ignored_by_patch(boxes_xywh, patch_xywh, limit: float = 0.5) -> np.ndarray:
    """The paper's rule (Sec. 5.3): a box with more than `limit` of its area inside the patch is ignored."""
    return inside_share(boxes_xywh, patch_xywh) > limit


def _outside_patch(items: list[dict], patch_boxes: dict[int, list[float]]) -> list[dict]:
    """`items` (annotations or detections) less those ignored_by_patch on their image."""
    if not items:
        return items
    patches = np.array([patch_boxes.get(int(a["image_id"]), [0.0, 0.0, 0.0, 0.0]) for a in items], np.float64)
    boxes = np.array([a["bbox"] for a in items], np.float64).reshape(-1, 4)
    drop = [bool(ignored_by_patch(b, p)[0]) for b, p in zip(boxes, patches)]
    return [a for a, d in zip(items, drop) if not d]


def _coco(dataset: dict):
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = dataset
    coco.createIndex()
    return coco


def coco_map(ground_truth: dict, detections: list[dict], image_ids: list[int],
             patch_boxes: dict[int, list[float]] | None = None) -> dict[str, float]:
    """The 12 COCOeval.stats (bbox) over `image_ids`, as {STAT_NAMES[i]: value}.

    `ground_truth` is a COCO instances dict (only bbox is used; iscrowd boxes are pycocotools' crowds), `detections`
    a COCO results list (image_id, category_id, bbox xywh, score); detections outside `image_ids` are dropped and
    an image of `image_ids` without ground truth still counts (its detections are false positives). With
    `patch_boxes` ({image_id: [x, y, w, h]}), every annotation (crowds included) and every detection of that image
    with ignored_by_patch is removed before evaluation: COCOeval._prepare overwrites any 'ignore' field with
    iscrowd, so removing them is how "ignored" is done. A stat without ground truth in its area range is −1, as in
    pycocotools. The inputs are not mutated.
    """
    from pycocotools.cocoeval import COCOeval

    wanted = {int(i) for i in image_ids}
    known = {int(img["id"]) for img in ground_truth["images"]}
    if not wanted or not wanted <= known:
        raise ValueError(f"image_ids must be a non-empty subset of the ground truth's images; "
                         f"unknown: {sorted(wanted - known)[:10]}")
    patch_boxes = {int(k): v for k, v in (patch_boxes or {}).items()}
    annotations = _outside_patch([copy.deepcopy(a) for a in ground_truth["annotations"]
                                  if int(a["image_id"]) in wanted], patch_boxes)
    for number, ann in enumerate(annotations, start=1):
        ann["id"] = number      # COCOeval takes a match with gt id 0 for no match (dtm == 0)
        ann.setdefault("iscrowd", 0)
        ann.setdefault("area", float(ann["bbox"][2]) * float(ann["bbox"][3]))
    results = [{**d, "image_id": int(d["image_id"]), "bbox": [float(v) for v in d["bbox"]]}
               for d in detections if int(d["image_id"]) in wanted]
    results = _outside_patch(results, patch_boxes)
    dataset = {"images": [copy.deepcopy(img) for img in ground_truth["images"] if int(img["id"]) in wanted],
               "annotations": annotations, "categories": copy.deepcopy(ground_truth["categories"])}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        gt = _coco(dataset)
        # loadRes([]) fails (it reads anns[0]): an empty result set is built by hand
        dt = gt.loadRes(results) if results else _coco({**dataset, "annotations": []})
        evaluation = COCOeval(gt, dt, iouType="bbox")
        evaluation.params.imgIds = sorted(wanted)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    for line in printed.getvalue().splitlines():
        log.debug("%s", line)
    return {name: float(value) for name, value in zip(STAT_NAMES, evaluation.stats)}


def patch_exclusions(ground_truth: dict, detections: list[dict], image_ids: list[int],
                     patch_boxes: dict[int, list[float]]) -> dict[str, int]:
    """How many ground-truth boxes (crowds included) and detections of `image_ids` the patch rule removes
    (ignored_by_patch on their image's patch box): what coco_map leaves out with these `patch_boxes`."""
    wanted = {int(i) for i in image_ids}
    patch_boxes = {int(k): v for k, v in patch_boxes.items()}
    counts = {}
    for kind, items in (("ground_truth", ground_truth["annotations"]), ("detections", detections)):
        items = [item for item in items if int(item["image_id"]) in wanted]
        counts[kind] = len(items) - len(_outside_patch(items, patch_boxes))
    return counts


def per_image_ap(ground_truth: dict, detections: list[dict], image_ids: list[int],
                 patch_boxes: dict[int, list[float]] | None = None) -> dict[int, float]:
    """AP@[.5:.95] of each image alone (coco_map over that image: the mean over its categories with ground truth;
    −1 where none is left), for paired comparisons of two runs on the same images."""
    return {int(i): coco_map(ground_truth, detections, [i], patch_boxes)["AP"] for i in image_ids}

"""Detections of a DETR-family detector as COCO results, and their mAP by pycocotools (methods.md P4)."""

from __future__ import annotations

import torch

from pipeline.data.coco_detection import DetectionImage
from pipeline.evaluation.coco_map import coco_map, xyxy_to_xywh
from pipeline.models.detr import Detector, same_size_batches, working_size


def coco_results(detections: list[dict], image_ids: list[int], category_of_label: dict[int, int]) -> list[dict]:
    """Post-processed detections (per image: scores, labels, xyxy boxes at the original size) → a COCO results
    list; labels without a COCO category are dropped."""
    results = []
    for image_id, found in zip(image_ids, detections):
        boxes = xyxy_to_xywh(found["boxes"].float().cpu()).tolist()
        for score, label, box in zip(found["scores"].tolist(), found["labels"].tolist(), boxes):
            if label in category_of_label:
                results.append({"image_id": image_id, "category_id": category_of_label[label], "bbox": box,
                                "score": score})
    return results


def predict(detector: Detector, inputs: list[torch.Tensor], images: list[DetectionImage],
            category_of_label: dict[int, int], batch_size: int) -> list[dict]:
    """COCO results of `inputs` (the images at the detector's working size, e.g. patched), in batches of one size."""
    results = []
    for batch in same_size_batches([image.shape[-2:] for image in inputs], batch_size):
        with torch.no_grad():
            outputs = detector(*detector.pad([inputs[i] for i in batch]))
        detections = detector.detections(outputs, [images[i].size for i in batch])
        results += coco_results(detections, [images[i].image_id for i in batch], category_of_label)
    return sorted(results, key=lambda result: result["image_id"])


def predict_split(detector: Detector, images: list[DetectionImage], category_of_label: dict[int, int],
                  batch_size: int, device: torch.device, rank: int = 0, world: int = 1) -> list[dict]:
    """COCO results of `images` (uint8, original sizes), resized to the detector's working size on `device` one batch
    at a time, so a split of any length fits in memory; batches of one working size over the whole list, as
    `predict` forms them. Of `world` data-parallel ranks, `rank` predicts every world-th batch from its rank-th: the
    ranks' results together are one process's, image by image."""
    sizes = [working_size(*image.size, detector.size) for image in images]
    results = []
    for batch in same_size_batches(sizes, batch_size)[rank::world]:
        part = [images[i] for i in batch]
        results += predict(detector, [detector.resize(image.as_float().to(device)) for image in part], part,
                           category_of_label, batch_size)
    return results


def evaluate_detector(detector: Detector, inputs: list[torch.Tensor], images: list[DetectionImage], instances: dict,
                      category_of_label: dict[int, int], batch_size: int,
                      patch_boxes: dict[int, list[float]] | None = None) -> tuple[dict[str, float], list[dict]]:
    """(the 12 COCOeval numbers, the COCO results) on `images`; `patch_boxes` applies the paper's exclusion rule."""
    results = predict(detector, inputs, images, category_of_label, batch_size)
    return coco_map(instances, results, [image.image_id for image in images], patch_boxes), results

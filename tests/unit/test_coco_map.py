"""COCO box mAP (pipeline/evaluation/coco_map.py) against hand-built cases and closed forms: ground truth fed back,
a shifted box's IoU (100 − dx)/(100 + dx), the patch exclusion rule (Lovisotto et al. 2022), box formats against
transformers' DETR post-processing."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from pipeline.evaluation.coco_map import (STAT_NAMES, coco_map, cxcywh_to_xywh, ignored_by_patch, inside_share,
                                          xywh_to_cxcywh, xyxy_to_xywh)

THRESHOLDS = [0.5 + 0.05 * i for i in range(10)]       # COCO's IoU thresholds 0.50:0.05:0.95


def image(image_id: int, width: int = 640, height: int = 480) -> dict:
    return {"id": image_id, "width": width, "height": height, "file_name": f"{image_id:012d}.jpg"}


def annotation(ann_id: int, image_id: int, category: int, bbox: list[float], crowd: bool = False) -> dict:
    x, y, w, h = bbox
    if crowd:       # uncompressed RLE, as COCO stores crowds
        start = int(x * 480 + y)
        segmentation = {"size": [480, 640], "counts": [start, int(w * h), 640 * 480 - start - int(w * h)]}
    else:
        segmentation = [[x, y, x + w, y, x + w, y + h, x, y + h]]
    return {"id": ann_id, "image_id": image_id, "category_id": category, "bbox": bbox, "area": w * h,
            "iscrowd": int(crowd), "segmentation": segmentation}


def dataset(images: list[dict], annotations: list[dict]) -> dict:
    return {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}]}


def detection(image_id: int, category: int, bbox: list[float], score: float) -> dict:
    return {"image_id": image_id, "category_id": category, "bbox": bbox, "score": score}


def fed_back_dataset() -> dict:
    return dataset([image(1), image(2), image(3)], [
        annotation(0, 1, 1, [10, 10, 20, 25]),              # small; id 0 must count like any other id
        annotation(1, 1, 3, [100, 120, 60, 50]),            # medium
        annotation(2, 1, 1, [300, 200, 200, 150]),          # large
        annotation(3, 2, 3, [50, 60, 120, 90]),
        annotation(4, 2, 3, [400, 50, 20, 15]),
        annotation(5, 2, 1, [200, 300, 150, 100], crowd=True),
    ])                                                      # image 3 has no ground truth


def test_ground_truth_fed_back_is_perfect():
    truth = fed_back_dataset()
    found = [detection(a["image_id"], a["category_id"], list(a["bbox"]), 1.0)
             for a in truth["annotations"] if not a["iscrowd"]]       # crowds need not be found
    found.append(detection(999, 1, [0, 0, 10, 10], 1.0))              # an image outside image_ids: dropped
    truth_before, found_before = copy.deepcopy(truth), copy.deepcopy(found)
    stats = coco_map(truth, found, [1, 2, 3])
    assert list(stats) == list(STAT_NAMES)
    assert stats["AP"] == stats["AP50"] == stats["AP75"] == stats["AR100"] == pytest.approx(1.0)
    assert stats["AP_small"] == stats["AP_medium"] == stats["AP_large"] == pytest.approx(1.0)
    assert truth == truth_before and found == found_before


@pytest.mark.parametrize("dx", [0, 2, 5, 10, 15, 20, 30, 40, 60])
def test_shifted_box_ap_counts_thresholds(dx):
    iou = (100 - dx) / (100 + dx)                     # overlap 100 − dx wide over a union 100 + dx wide
    assert min(abs(iou - t) for t in THRESHOLDS) > 1e-3
    truth = dataset([image(1)], [annotation(1, 1, 1, [50, 50, 100, 100])])
    stats = coco_map(truth, [detection(1, 1, [50 + dx, 50, 100, 100], 0.9)], [1])
    # one box, one detection: AP at a threshold is 1 when matched (IoU ≥ t), else 0
    assert stats["AP"] == pytest.approx(sum(iou >= t for t in THRESHOLDS) / 10)
    assert stats["AP50"] == pytest.approx(float(iou >= 0.5)) and stats["AP75"] == pytest.approx(float(iou >= 0.75))


PATCH = [300, 200, 100, 100]
FOUND = [20, 20, 80, 60]                # a box far from the patch, detected exactly
MISSED_60 = [260, 200, 100, 50]         # x 300..360 of 260..360 inside: 60 %
FALSE_60 = [340, 250, 100, 40]          # x 340..400 of 340..440 inside: 60 %
FALSE_40 = [360, 250, 100, 40]          # x 360..400 of 360..460 inside: 40 %


def test_inside_share_hand_computed():
    boxes = np.array([MISSED_60, FALSE_60, FALSE_40, FOUND, [310, 210, 20, 30], [0, 0, 10, 20], [320, 220, 0, 40]])
    expected = [60 * 50 / 5000, 60 * 40 / 4000, 40 * 40 / 4000, 0.0, 1.0, 50 / 200, 0.0]
    regions = [PATCH] * 5 + [[5, 10, 10, 10], PATCH]          # [0, 0, 10, 20] ∩ [5, 10, 10, 10]: 5 × 10
    shares = [inside_share(b, r)[0] for b, r in zip(boxes, regions)]
    assert shares == pytest.approx(expected)
    assert inside_share(torch.tensor(boxes[:3], dtype=torch.float64), PATCH) == pytest.approx(expected[:3])
    assert ignored_by_patch(boxes[:3], PATCH).tolist() == [True, True, False]


def test_ground_truth_inside_patch_is_ignored():
    truth = dataset([image(1)], [annotation(1, 1, 1, FOUND), annotation(2, 1, 1, MISSED_60)])
    found = [detection(1, 1, FOUND, 0.9)]
    # one of two boxes found, no false positive: 101-point interpolated precision 1 for recall ≤ 1/2, 0 beyond
    assert coco_map(truth, found, [1])["AP"] == pytest.approx(51 / 101)
    assert coco_map(truth, found, [1], {1: PATCH})["AP"] == pytest.approx(1.0)


def test_false_positive_inside_patch_is_ignored():
    truth = dataset([image(1)], [annotation(1, 1, 1, FOUND)])
    for false, expected in [(FALSE_60, 1.0), (FALSE_40, 0.5)]:
        # the false positive ranks first: kept, precision is 1/2 at every recall
        found = [detection(1, 1, false, 0.95), detection(1, 1, FOUND, 0.9)]
        assert coco_map(truth, found, [1], {1: PATCH})["AP"] == pytest.approx(expected)
        assert coco_map(truth, found, [1])["AP"] == pytest.approx(0.5)


def test_crowd_inside_patch_is_removed():
    # a detection on a crowd is ignored; once the crowd is removed by the patch rule it is a false positive
    crowd = [300, 160, 100, 100]                                # rows 200..260 of 160..260 inside: 60 %
    covering = [300, 120, 100, 100]                             # rows 200..220 of 120..220 inside: 20 %
    truth = dataset([image(1)], [annotation(1, 1, 1, FOUND), annotation(2, 1, 1, crowd, crowd=True)])
    found = [detection(1, 1, covering, 0.95), detection(1, 1, FOUND, 0.9)]
    assert inside_share([crowd, covering], PATCH) == pytest.approx([0.6, 0.2])
    # crowd IoU = |covering ∩ crowd| / |covering| = 60 × 100 / 10000 ≥ 0.5: the detection is ignored
    assert coco_map(truth, found, [1])["AP50"] == pytest.approx(1.0)
    assert coco_map(truth, found, [1], {1: PATCH})["AP50"] == pytest.approx(0.5)


def test_empty_detections_give_zero_ap():
    truth = dataset([image(1), image(2)], [annotation(1, 1, 1, [50, 50, 200, 200])])
    stats = coco_map(truth, [], [1, 2])
    assert stats["AP"] == stats["AP50"] == stats["AR100"] == stats["AP_large"] == 0.0
    assert stats["AP_small"] == stats["AP_medium"] == -1.0          # no ground truth in those area ranges


@pytest.mark.parametrize("as_tensor", [False, True])
def test_box_formats_round_trip(as_tensor):
    rng = np.random.default_rng(0)
    for width, height in [(640, 480), (1, 1), (333, 517)]:
        corner = rng.uniform(0, 1, (50, 2)) * [width, height]
        size = rng.uniform(0, 1, (50, 2)) * ([width, height] - corner)
        boxes = np.concatenate([corner, size], axis=1)
        boxes = torch.from_numpy(boxes) if as_tensor else boxes
        normalised = xywh_to_cxcywh(boxes, width, height)
        assert isinstance(normalised, type(boxes)) and 0 <= normalised.min() and normalised.max() <= 1
        back = cxcywh_to_xywh(normalised, width, height)
        assert isinstance(back, type(boxes))
        np.testing.assert_allclose(np.asarray(back), np.asarray(boxes), rtol=1e-12, atol=1e-9)
        corners = np.concatenate([np.asarray(boxes)[:, :2], np.asarray(boxes)[:, :2] + np.asarray(boxes)[:, 2:]], 1)
        corners = torch.from_numpy(corners) if as_tensor else corners
        np.testing.assert_allclose(np.asarray(xyxy_to_xywh(corners)), np.asarray(boxes), atol=1e-9)


def test_cxcywh_agrees_with_detr_post_processing():
    from transformers import DetrImageProcessor
    from transformers.models.detr.modeling_detr import DetrObjectDetectionOutput

    generator = torch.Generator().manual_seed(0)
    batch, queries, classes = 3, 7, 4
    logits = torch.randn(batch, queries, classes + 1, generator=generator)
    centres = 0.2 + 0.6 * torch.rand(batch, queries, 2, generator=generator)
    sizes = 0.05 + 0.3 * torch.rand(batch, queries, 2, generator=generator)
    pred_boxes = torch.cat([centres, sizes], dim=-1)
    target_sizes = [(480, 640), (300, 300), (517, 333)]            # (height, width)
    outputs = DetrObjectDetectionOutput(logits=logits, pred_boxes=pred_boxes)
    results = DetrImageProcessor().post_process_object_detection(outputs, threshold=0.0, target_sizes=target_sizes)
    kept = logits.softmax(-1)[..., :-1].max(-1).values > 0.0
    assert kept.all()
    for result, boxes, keep, (height, width) in zip(results, pred_boxes, kept, target_sizes):
        assert len(result["boxes"]) == queries
        torch.testing.assert_close(xyxy_to_xywh(result["boxes"]), cxcywh_to_xywh(boxes[keep], width, height),
                                   rtol=0, atol=1e-3)

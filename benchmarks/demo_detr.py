"""The demo detector and its attacked val images, as the DETR benchmarks load them (attack_detr@scenes_rtdetr's
inputs): needs `dvc repro train_detr@scenes_rtdetr` first; the settings are params.yaml's `attack_detr`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from pipeline.config import AttackDetr, Params, validate_params
from pipeline.data.coco_detection import DetectionSplit, label_map, load_detection_split
from pipeline.evaluation.detection import evaluate_detector
from pipeline.evaluation.detr_runs import patch_box_at_original, patch_corner
from pipeline.models.detr import Detector, load_detector

DATA = Path("data")
DETECTOR = "scenes_rtdetr"


@dataclass
class DemoDetr:
    params: Params
    cfg: AttackDetr
    detector: Detector
    val: DetectionSplit
    categories: dict[int, int]       # model label → COCO category id
    inputs: list[torch.Tensor]       # the val images at the working size
    ids: list[int]

    @classmethod
    def load(cls, dev: torch.device) -> DemoDetr:
        params = validate_params(yaml.safe_load(Path("params.yaml").read_text()))
        cfg, entry = params.attack_detr, params.train_detr[DETECTOR]
        detector = load_detector(DATA / "train_detr" / DETECTOR / "model", dev)
        val = load_detection_split(DATA / "download" / entry.dataset, "val", cfg.num_images, params.seed, 1.0)
        inputs = [detector.resize(image.as_float().to(dev)) for image in val.images]
        return cls(params, cfg, detector, val, label_map(detector.class_names, val.instances["categories"]), inputs,
                   [image.image_id for image in val.images])

    def patch_boxes(self, side: int) -> tuple[tuple[int, int], dict[int, list[float]]]:
        """The corner of a `side` px patch at the configured centre, and each image's patch box at its original size
        (the seed's exclusion rule)."""
        corner = patch_corner(tuple(self.cfg.centre), side)
        return corner, {image.image_id: patch_box_at_original(corner, side, tuple(x.shape[-2:]), image.size)
                        for image, x in zip(self.val.images, self.inputs)}

    def scored(self, images: list[torch.Tensor], boxes: dict[int, list[float]]) -> tuple[dict, list[dict]]:
        """(the 12 COCOeval numbers, the COCO results) of `images` with the exclusion rule on `boxes`."""
        return evaluate_detector(self.detector, images, self.val.images, self.val.instances, self.categories,
                                 self.cfg.batch_size, boxes)

"""Stage `train_detr@<name>`: the `train_detr.<name>` DETR-family detector for the Attention-Fool detection attack
(seed 003 §5.3, methods.md P4).

`init: pretrained` loads a hub checkpoint (facebook/detr-resnet-50, -101) or local folder, used as it is with epochs
0, else fine-tuned; `init: config` builds a small DETR / Conditional DETR and trains it from scratch on the COCO
archives of `data/download/<dataset>` (`coco`, or the demo's `scenes`), its classes the train split's annotated
categories. Model labels map to the val annotation file's categories by name.
Training images stream from the train archive batch by batch (`loader_workers` processes decode them); the val
split, evaluated every `eval_every` epochs, is decoded once into memory (5,000 COCO images: ≈ 4.6 GB as uint8).
Under torchrun the ranks split each global batch and average their gradients, each rank predicts every W-th val
batch, and rank 0 scores the gathered detections and writes (docs/performance.md, "Detector training").

Writes `data/train_detr/<name>/`: model/ (a `save_pretrained` folder with the image processor), metrics.json (the
12 COCOeval numbers on the validation split, and the epochs trained), plots/ (dvclive curves, and map_minutes.csv:
the validation mAP at each evaluation against the training minutes so far) and resume/.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from dvclive import Live

from pipeline.config import DetrModel
from pipeline.data.coco_detection import (ArchiveImages, label_map, load_detection_index, load_detection_split,
                                          training_targets)
from pipeline.evaluation.coco_map import coco_map
from pipeline.evaluation.detection import predict_split
from pipeline.io.atomic import csv_bytes, write_bytes, write_json
from pipeline.models.detr import Detector, detector_from_config, detector_from_pretrained, save_detector
from pipeline.train.data_parallel import DataParallel
from pipeline.train.detection import DetectorFitSettings, fit_detector
from pipeline.train.state import fingerprint, library_digest
from stages.common import DATA, entry_args, log, pick_device, run_stage
from stages.live import epoch_logger

def initial_detector(entry: DetrModel, categories: list[dict], used: set[int], seed: int) -> Detector:
    """The detector before training; from a config, its classes are the `categories` whose ids are in `used`."""
    if entry.init == "pretrained":
        log.info("loading %s (HF_HUB_OFFLINE and the Hugging Face cache apply)", entry.pretrained)
        return detector_from_pretrained(entry.pretrained)
    class_names = [c["name"] for c in sorted(categories, key=lambda c: c["id"]) if c["id"] in used]
    torch.manual_seed(seed)
    return detector_from_config(entry.config, class_names, entry.image_size.model_dump(exclude_none=True))


def main() -> None:
    name, entry, params = entry_args(__doc__.splitlines()[0], "train_detr")
    device = pick_device(params.accelerator)
    ranks = DataParallel.from_environment(device)
    out = DATA / "train_detr" / name
    archives = DATA / "download" / entry.dataset
    train = load_detection_index(archives, "train", entry.max_images.train, params.seed) if entry.epochs else None
    val = load_detection_split(archives, "val", entry.max_images.val, params.seed, params.prepare.max_corrupt_share)
    annotated, instances = (train.records, train.instances) if train else (val.images, val.instances)
    used = {int(c) for item in annotated for c in item.category_ids}         # a config-built detector's classes: train's
    categories = instances["categories"]
    detector = ranks.prepare(initial_detector(entry, categories, used, params.seed).to(device))
    try:
        category_of_label = label_map(detector.class_names, val.instances["categories"])
    except ValueError as exc:
        sys.exit(f"{archives / 'annotations_trainval2017.zip'}: {exc}")
    log.info("%s: %s, %.2fM parameters, %d of %d labels mapped to COCO categories, resize %s", name,
             detector.family, sum(p.numel() for p in detector.parameters()) / 1e6, len(category_of_label),
             len(detector.class_names), detector.size)

    def evaluate() -> dict:
        """The 12 COCOeval numbers on the val split on rank 0 (every rank predicts its share of the batches), {} on
        the other ranks."""
        results = ranks.gather(predict_split(detector, val.images, category_of_label, entry.batch_size, device,
                                             ranks.rank, ranks.world))
        if results is None:
            return {}
        results.sort(key=lambda result: result["image_id"])        # one process's order (predict's)
        log.info("val: %d detections on %d images, predicted by %d rank(s)", len(results), len(val.images),
                 ranks.world)
        stats = coco_map(val.instances, results, [image.image_id for image in val.images])
        return {f"val_{key}": value for key, value in stats.items()}

    history = []
    if entry.epochs:
        label_of_category = {category: label for label, category in category_of_label.items()}
        targets = [training_targets(record, label_of_category) for record in train.records]
        settings = DetectorFitSettings(entry.epochs, entry.batch_size, entry.optimiser, params.seed, entry.clip_norm,
                                       entry.hflip, entry.eval_every, entry.warmup_steps, params.loader_workers,
                                       params.prepare.max_corrupt_share)
        identity = fingerprint(library_digest(), Path(__file__).read_text(), params.seed, entry.model_dump(),
                               (archives / "source.json").read_text(), [record.image_id for record in train.records])
        live = Live(str(out), dvcyaml=False, save_dvc_exp=False) if ranks.writes else None
        history = fit_detector(detector, ArchiveImages(train), targets, evaluate, settings, out / "resume", identity,
                               device, epoch_logger(live) if live else lambda metrics: None, ranks)
        if live:
            live.end()
    detector.eval()
    scores = history[-1] if history else evaluate()
    if not ranks.writes:
        return
    metrics = {"epochs": entry.epochs, "val_images": len(val.images), **scores}
    save_detector(out / "model", detector)
    write_json(out / "metrics.json", metrics)
    write_bytes(out / "plots" / "map_minutes.csv", csv_bytes(
        ["epoch", "train_minutes", "val_AP", "val_AP50"],
        [[h["epoch"], h["train_minutes"], h["val_AP"], h["val_AP50"]] for h in history if "val_AP" in h]))
    log.info("%s: val AP %.4f, AP50 %.4f after %d epochs", name, metrics["val_AP"], metrics["val_AP50"], entry.epochs)


if __name__ == "__main__":
    run_stage(main)

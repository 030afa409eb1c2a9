"""Stage `attack_detr@<name>`: the Attention-Fool patch attack (seed 003 §5.3, methods.md P4) on the `train_detr`
detector `<name>`, scored with COCO mAP by pycocotools.

On `num_images` seeded val2017 images at the detector's working size: for every patch side of `patch_px`, a patch
centred at pixel `centre` per image, optimised for each objective (ce: every decoder query targeted to "no
object"; ce+kq: plus λ·L_kq^(1) on the first encoder layer's key under the patch; kq: alone). mAP on the attacked
images, clean and patched, with the paper's rule: detections and ground-truth boxes with more than half of their
area inside the patch box are ignored, in both runs.

Writes `data/attack_detr/<name>/`: metrics.json (the 12 COCOeval numbers without a patch, and per patch side:
clean with the exclusion, then per objective, with the key cell and the attention on it before and after),
detections/<run>.json (COCO results), patches.safetensors, plots/curves/<run>.csv (objective and attention on
the patch key per iteration) and images/ (detections before and after, the patches, the encoder attention to
the patch cell before and after, the curves).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

from pipeline.attacks.detr_patch import DetrPatchAttack
from pipeline.config import AttackDetr
from pipeline.data.coco_detection import DetectionImage, DetectionSplit, label_map, load_detection_split
from pipeline.evaluation.charts import line_chart
from pipeline.evaluation.coco_map import coco_map
from pipeline.evaluation.detection import evaluate_detector
from pipeline.evaluation.detection_figures import detections_panel, heat_panel, panel_rows, patch_panel
from pipeline.evaluation.detr_runs import DetrRunResult, patch_box_at_original, patch_corner, run_detr_attack
from pipeline.io.atomic import write_bytes, write_json, write_png
from pipeline.models.checkpoint import save_tensors
from pipeline.models.detr import Detector, load_detector
from pipeline.report.tables import csv_bytes
from stages.common import DATA, entry_args, log, pick_device

COCO = DATA / "download" / "coco"
SHOWN_SCORE = 0.5          # detections drawn in the figures: score at least this


def attack_run(detector: Detector, cfg: AttackDetr, size: int, objective: str, seed: int) -> DetrPatchAttack:
    return DetrPatchAttack(detector, size, cfg.steps, objective, cfg.step_size_255 / 255,
                           cfg.momentum if cfg.optimiser == "momentum" else None, cfg.attention_weight, cfg.normalise,
                           cfg.amp, seed)


def curve_csv(result: DetrRunResult) -> bytes:
    rows = [[t, loss, att] for t, (loss, att) in enumerate(zip(result.loss_curve, result.attention_curve))]
    return csv_bytes(["iteration", "objective", "attention_on_patch"], rows)


def main() -> None:
    name, _, params = entry_args(__doc__.splitlines()[0], "train_detr")
    cfg, device = params.attack_detr, pick_device()
    out = DATA / "attack_detr" / name
    detector = load_detector(DATA / "train_detr" / name / "model", device)
    val = load_detection_split(COCO, "val", cfg.num_images, params.seed, params.prepare.max_corrupt_share)
    try:
        category_of_label = label_map(detector.class_names, val.instances["categories"])
    except ValueError as exc:
        sys.exit(f"{COCO / 'annotations_trainval2017.zip'}: {exc}")
    inputs = [detector.resize(image.as_float().to(device)) for image in val.images]
    image_ids = [image.image_id for image in val.images]
    clean, clean_results = evaluate_detector(detector, inputs, val.images, val.instances, category_of_label,
                                             cfg.batch_size)
    write_bytes(out / "detections" / "clean.json", json.dumps(clean_results).encode())
    detections = {"clean": clean_results}
    centre = tuple(cfg.centre)
    metrics: dict = {"num_images": len(val.images), "steps": cfg.steps, "centre": list(centre), "clean": clean,
                     "patches": {}}
    runs: dict[str, DetrRunResult] = {}            # the first patch side's runs, for the figures
    patches: dict[str, torch.Tensor] = {}
    for size in cfg.patch_px:
        corner = patch_corner(centre, size)
        boxes = {image.image_id: patch_box_at_original(corner, size, tuple(x.shape[-2:]), image.size)
                 for image, x in zip(val.images, inputs)}
        entry = metrics["patches"][f"{size}px"] = {"clean": coco_map(val.instances, clean_results, image_ids, boxes)}
        for objective in cfg.objectives:
            label = f"{size}px_{objective}"
            result = run_detr_attack(attack_run(detector, cfg, size, objective, params.seed), inputs, image_ids,
                                     centre, cfg.batch_size, cfg.grid_images, label, params.seed)
            stats, results = evaluate_detector(detector, result.patched, val.images, val.instances, category_of_label,
                                               cfg.batch_size, boxes)
            entry[objective] = {**stats, "key_cell": list(result.key_cell),
                                "attention_on_patch": {"before": result.attention_before.mean().item(),
                                                       "after": result.attention_after.mean().item()}}
            write_bytes(out / "detections" / f"{label}.json", json.dumps(results).encode())
            detections[label] = results
            write_bytes(out / "plots" / "curves" / f"{label}.csv", curve_csv(result))
            patches[f"{size}px/{objective}"] = result.patches
            if size == cfg.patch_px[0]:
                runs[objective] = result
            log.info("%s %s: AP %.4f (clean %.4f)", name, label, stats["AP"], entry["clean"]["AP"])
    save_tensors(out / "patches.safetensors", patches)
    write_figures(out, val, inputs, cfg, runs, detections)
    write_json(out / "metrics.json", metrics)
    log.info("%s: clean AP %.4f; per patch and objective in %s", name, clean["AP"], out / "metrics.json")


def shown_boxes(results: list[dict], image: DetectionImage, working: tuple[int, int], names: dict[int, str]):
    """(xyxy boxes at the working size, category names) of one image's COCO results with score ≥ SHOWN_SCORE."""
    kept = [r for r in results if r["image_id"] == image.image_id and r["score"] >= SHOWN_SCORE]
    scale = torch.tensor([working[1] / image.size[1], working[0] / image.size[0]] * 2)
    boxes = torch.tensor([r["bbox"] for r in kept], dtype=torch.float).reshape(-1, 4)
    return torch.cat([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], 1) * scale, [names[r["category_id"]] for r in kept]


def write_figures(out, val: DetectionSplit, inputs: list[torch.Tensor], cfg: AttackDetr,
                  runs: dict[str, DetrRunResult], detections: dict[str, list[dict]]) -> None:
    """For the first patch side: images/detections.png (clean | patched under each objective: the scored detections
    with score ≥ SHOWN_SCORE), images/attention.png (the first encoder layer's attention of every query on the patch
    cell, mean over heads: clean | each objective), images/patches.png and images/curves.png (objective and
    attention on the patch key per iteration, one line per objective)."""
    size, count = cfg.patch_px[0], min(cfg.grid_images, len(inputs))
    shown = runs
    corner = patch_corner(tuple(cfg.centre), size)
    names = {c["id"]: c["name"] for c in val.instances["categories"]}
    rows, attention_rows, captions = [], [], []
    for i, image in enumerate(val.images[:count]):
        pictures = {"clean": inputs[i].cpu(), **{o: r.patched[i].cpu() for o, r in shown.items()}}
        rows.append([detections_panel(x, *shown_boxes(detections[f"{size}px_{what}" if what != "clean" else what],
                                                      image, tuple(x.shape[-2:]), names),
                                      None if what == "clean" else [corner[1], corner[0], size, size])
                     for what, x in pictures.items()])
        first = next(iter(shown.values()))
        attention_rows.append([heat_panel(pictures["clean"], first.maps_before[i], first.stride),
                               *(heat_panel(pictures[o], r.maps_after[i], r.stride) for o, r in shown.items())])
        captions.append(f"image {image.image_id}: clean | " + " | ".join(f"{size} px, {o}" for o in shown))
    write_png(out / "images" / "detections.png", panel_rows(rows, captions))
    write_png(out / "images" / "attention.png", panel_rows(attention_rows, [f"attention on the patch cell: {c}"
                                                                            for c in captions]))
    write_png(out / "images" / "patches.png", panel_rows(
        [[patch_panel(r.patches[i]) for r in shown.values()] for i in range(count)],
        [f"image {val.images[i].image_id}: " + " | ".join(shown) for i in range(count)]))
    charts = [line_chart({o: getattr(r, curve) for o, r in shown.items()}, f"{size} px patch: mean {what}",
                         "iterations", "") for curve, what in (("loss_curve", "objective"),
                                                               ("attention_curve", "attention on the patch key"))]
    write_png(out / "images" / "curves.png", np.concatenate(charts, axis=1))


if __name__ == "__main__":
    main()

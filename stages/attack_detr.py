"""Stage `attack_detr@<name>`: the Attention-Fool patch attack (seed 003 §5.3, methods.md P4) on the `train_detr`
detector `<name>`, scored with COCO mAP by pycocotools.

On `num_images` seeded val images of the detector's dataset at its working size: for every patch side of `patch_px`,
a patch centred at pixel `centre` per image, for each objective (random: the U[0, 1] start, never optimised, the
control; ce: every decoder query targeted to "no object"; ce+kq: plus λ·L_kq^(1) on the detector's first
self-attention over image tokens, named in metrics.json; kq: alone). mAP on the attacked images, clean and patched,
with the paper's rule: detections and ground-truth boxes with more than half of their area inside the patch box are
ignored, in both runs; how many each run lost to the rule is counted. mAP is also measured for the patches after
each of `map_at_steps` iterations (mAP against steps), and objectives are compared per image (AP@[.5:.95] of each
image, paired bootstrap of the mean difference with its 95% interval). The attack runs in batches of one working
size that mix the runs of an image (pipeline/evaluation/detr_runs.DetrAttackPlan), the unit of resume and, under
torchrun, of the split over the ranks (stages/distributed.py).

Writes `data/attack_detr/<name>/`: metrics.json (the 12 COCOeval numbers without a patch, and per patch side:
clean with the exclusion, then per objective, with the key cell, the attention on it before and after, the removed
boxes, mAP at the snapshot steps, and the paired comparisons), detections/<run>.json (COCO results),
patches.safetensors, plots/curves/<run>.csv (objective and attention on the patch key per iteration),
plots/map_steps/<run>.csv (mAP per snapshot step) and images/ (detections before and after, the attention on the
patch cell before and after, mAP against steps, the curves).
"""

from __future__ import annotations

import functools
import json
import sys

import torch
from tqdm import tqdm

from pipeline.attacks.detr_patch import DetrPatchAttack, DetrRun
from pipeline.config import AttackDetr
from pipeline.data.coco_detection import DetectionImage, DetectionSplit, label_map, load_detection_split
from pipeline.evaluation.coco_map import coco_map, patch_exclusions, per_image_ap
from pipeline.evaluation.detection import evaluate_detector
from pipeline.evaluation.detection_figures import (ShownDetections, attention_figure, detections_figure,
                                                   iteration_curves_figure, map_steps_figure)
from pipeline.evaluation.detr_runs import (DetrAttackPlan, DetrBatchResult, DetrRunResult, patch_box_at_original,
                                           patch_corner)
from pipeline.evaluation.intervals import paired_bootstrap
from pipeline.io.atomic import csv_bytes, write_bytes, write_json
from pipeline.models.checkpoint import save_tensors
from pipeline.models.detr import Detector, load_detector
from stages.common import DATA, entry_args, log, pick_device, run_stage
from stages.distributed import share_units
from stages.progress import run_store

SHOWN_SCORE = 0.5          # detections drawn in the figures: score at least this
PAIRS = (("ce+kq", "ce"), ("kq", "ce"), ("ce", "random"), ("random", "clean"))   # (run, baseline), per image


def attack_of(detector: Detector, cfg: AttackDetr) -> DetrPatchAttack:
    return DetrPatchAttack(detector, cfg.steps, cfg.step_size_255 / 255,
                           cfg.momentum if cfg.optimiser == "momentum" else None, cfg.attention_weight, cfg.normalise,
                           cfg.amp, tuple(cfg.map_at_steps))


def curve_csv(result: DetrRunResult) -> bytes:
    rows = [[t, loss, att] for t, (loss, att) in enumerate(zip(result.loss_curve, result.attention_curve))]
    return csv_bytes(["iteration", "objective", "attention_on_patch"], rows)


def paired_differences(per_image: dict[str, dict[int, float]]) -> dict[str, dict]:
    """For each (run, baseline) of PAIRS that ran: the mean per-image AP difference run − baseline with its paired
    bootstrap interval, over the images with ground truth left in both."""
    compared = {}
    for run, baseline in PAIRS:
        if run in per_image and baseline in per_image:
            ids = [i for i, ap in per_image[run].items() if ap >= 0 and per_image[baseline][i] >= 0]
            compared[f"{run} - {baseline}"] = paired_bootstrap([per_image[run][i] for i in ids],
                                                               [per_image[baseline][i] for i in ids])
    return compared


def main() -> None:
    name, entry, params = entry_args(__doc__.splitlines()[0], "train_detr")
    cfg, device = params.attack_detr, pick_device(params.accelerator)
    out, archives = DATA / "attack_detr" / name, DATA / "download" / entry.dataset
    detector = load_detector(DATA / "train_detr" / name / "model", device)
    val = load_detection_split(archives, "val", cfg.num_images, params.seed, params.prepare.max_corrupt_share)
    try:
        category_of_label = label_map(detector.class_names, val.instances["categories"])
    except ValueError as exc:
        sys.exit(f"{archives / 'annotations_trainval2017.zip'}: {exc}")
    inputs = [detector.resize(image.as_float().to(device)) for image in val.images]
    image_ids = [image.image_id for image in val.images]

    def scored(patched: list[torch.Tensor], boxes: dict) -> tuple[dict, list[dict]]:
        return evaluate_detector(detector, patched, val.images, val.instances, category_of_label, cfg.batch_size,
                                 boxes)

    clean, clean_results = scored(inputs, None)
    write_bytes(out / "detections" / "clean.json", json.dumps(clean_results).encode())
    detections = {"clean": clean_results}
    centre = tuple(cfg.centre)
    metrics: dict = {"num_images": len(val.images), "steps": cfg.steps, "centre": list(centre),
                     "attention_layer": detector.attention_name, "clean": clean, "patches": {}}
    store = run_store(out, __file__, DATA / "train_detr" / name / "model", params.seed, cfg.model_dump(),
                      params.prepare.max_corrupt_share, image_ids)

    planned = [DetrRun(size, objective) for size in cfg.patch_px for objective in cfg.objectives]
    plan = DetrAttackPlan(attack_of(detector, cfg), planned, inputs, image_ids, centre, cfg.batch_size, params.seed)

    def attacked(batch: int) -> DetrBatchResult:
        """The batch's result from the store, or computed and stored."""
        return store.computed(f"batch {batch}", DetrBatchResult, device, functools.partial(plan.attack_batch, batch))

    if not share_units({f"batch {k}": (functools.partial(attacked, k), plan.cost(k)) for k in range(len(plan.batches))}):
        return
    attacked_runs = plan.assemble([attacked(k) for k in tqdm(range(len(plan.batches)), desc=f"{name}: attack batches")],
                                  cfg.grid_images)
    runs: dict[str, DetrRunResult] = {}            # the first patch side's runs, for the figures
    patches: dict[str, torch.Tensor] = {}
    for size in cfg.patch_px:
        corner = patch_corner(centre, size)
        boxes = {image.image_id: patch_box_at_original(corner, size, tuple(x.shape[-2:]), image.size)
                 for image, x in zip(val.images, inputs)}
        entry_metrics = metrics["patches"][f"{size}px"] = {
            "clean": {**coco_map(val.instances, clean_results, image_ids, boxes),
                      "excluded": patch_exclusions(val.instances, clean_results, image_ids, boxes)}}
        per_image = {"clean": per_image_ap(val.instances, clean_results, image_ids, boxes)}
        for objective in cfg.objectives:
            label = DetrRun(size, objective).label
            result = attacked_runs[label]
            stats, results = scored(result.patched(inputs, corner), boxes)
            at_steps = {t: scored(result.patched_at(t, inputs, corner), boxes)[0]["AP"] for t in result.snapshots}
            at_steps[len(result.loss_curve) - 1] = stats["AP"]
            entry_metrics[objective] = {**stats, "key_cell": list(result.key_cell),
                                        "attention_on_patch": {"before": result.attention_before.mean().item(),
                                                               "after": result.attention_after.mean().item()},
                                        "excluded": patch_exclusions(val.instances, results, image_ids, boxes),
                                        "AP_at_steps": {str(t): ap for t, ap in sorted(at_steps.items())}}
            per_image[objective] = per_image_ap(val.instances, results, image_ids, boxes)
            write_bytes(out / "detections" / f"{label}.json", json.dumps(results).encode())
            detections[label] = results
            write_bytes(out / "plots" / "curves" / f"{label}.csv", curve_csv(result))
            write_bytes(out / "plots" / "map_steps" / f"{label}.csv",
                        csv_bytes(["step", "AP"], sorted(at_steps.items())))
            patches[f"{size}px/{objective}"] = result.patches
            if size == cfg.patch_px[0]:
                runs[objective] = result
            log.info("%s %s: AP %.4f (clean %.4f)", name, label, stats["AP"], entry_metrics["clean"]["AP"])
        entry_metrics["paired"] = paired_differences(per_image)
    save_tensors(out / "patches.safetensors", patches)
    write_figures(out, val, inputs, cfg, runs, detections, metrics, detector)
    write_json(out / "metrics.json", metrics)
    store.remove()
    log.info("%s: clean AP %.4f; per patch and objective in %s", name, clean["AP"], out / "metrics.json")


def shown(image: torch.Tensor, record: DetectionImage, results: list[dict], names: dict[int, str]) -> ShownDetections:
    """One panel: `image` (working size) with the COCO results of its record that score at least SHOWN_SCORE."""
    kept = [r for r in results if r["image_id"] == record.image_id and r["score"] >= SHOWN_SCORE]
    working = image.shape[-2:]
    scale = torch.tensor([working[1] / record.size[1], working[0] / record.size[0]] * 2)
    boxes = torch.tensor([r["bbox"] for r in kept], dtype=torch.float).reshape(-1, 4)
    boxes = torch.cat([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], 1) * scale
    return ShownDetections(image.cpu(), boxes, [names[r["category_id"]] for r in kept], [r["score"] for r in kept])


def write_figures(out, val: DetectionSplit, inputs: list[torch.Tensor], cfg: AttackDetr, runs: dict[str, DetrRunResult],
                  detections: dict[str, list[dict]], metrics: dict, detector: Detector) -> None:
    """For the first patch side: images/detections.png (clean | patched under each objective, detections with score
    ≥ SHOWN_SCORE), images/attention.png (the first image attention of every query on the patch key, mean over
    heads: clean | each objective), images/map_steps.png and images/curves.png (objective and attention on the
    patch key per iteration)."""
    size, count = cfg.patch_px[0], min(cfg.grid_images, len(inputs))
    corner = patch_corner(tuple(cfg.centre), size)
    names = {c["id"]: c["name"] for c in val.instances["categories"]}
    first = next(iter(runs.values()))
    patched = {o: r.patched(inputs[:count], corner) for o, r in runs.items()}
    columns = ["clean", *(f"{size} px, {o}" for o in runs)]
    rows = [f"image {image.image_id}" for image in val.images[:count]]
    panels = [[shown(inputs[i], image, detections["clean"], names),
               *(shown(patched[o][i], image, detections[f"{size}px_{o}"], names) for o in runs)]
              for i, image in enumerate(val.images[:count])]
    write_bytes(out / "images" / "detections.png", detections_figure(
        panels, columns, rows, [corner[1], corner[0], size, size],
        f"Detections (score ≥ {SHOWN_SCORE}) before and after a {size} px patch (dashed)", sorted(names.values())))
    write_bytes(out / "images" / "attention.png", attention_figure(
        [[inputs[i].cpu(), *(images[i].cpu() for images in patched.values())] for i in range(count)],
        [[first.maps_before[i], *(r.maps_after[i] for r in runs.values())] for i in range(count)], columns, rows,
        first.key_cell, first.stride,
        f"{metrics['attention_layer']}: every query's attention on the key under the patch (cell outlined)"))
    results = metrics["patches"][f"{size}px"]
    write_bytes(out / "images" / "map_steps.png", map_steps_figure(
        {o: [(int(t), ap) for t, ap in results[o]["AP_at_steps"].items()] for o in runs}, results["clean"]["AP"],
        f"mAP against attack steps, {size} px patch, {len(inputs)} images"))
    optimised = {o: r for o, r in runs.items() if len(r.loss_curve) > 1}
    if optimised:
        tokens = first.maps_before[0].numel()
        write_bytes(out / "images" / "curves.png", iteration_curves_figure(
            {o: r.loss_curve for o, r in optimised.items()}, {o: r.attention_curve for o, r in optimised.items()},
            1 / tokens, f"{size} px patch: the objective and the attention on the patch key per iteration"))


if __name__ == "__main__":
    run_stage(main)

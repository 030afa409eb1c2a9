"""bf16 autocast in the DETR patch attack against fp32 (docs/performance.md#bf16): on the demo detector and its
attacked val images, every patch side × optimised objective of params.yaml's `attack_detr` runs twice from the same
seed, in fp32 and under bf16 autocast (the mAP is always scored in fp32); per run the two mAPs and the per-image AP
difference bf16 − fp32 with its paired bootstrap interval, and each precision's wall time.

Needs `dvc repro train_detr@scenes_rtdetr` first. Run: python -m benchmarks.detr_bf16 → benchmarks/results/detr_bf16.json
"""

from __future__ import annotations

import time

from benchmarks.common import device, machine, save, synchronize
from benchmarks.demo_detr import DETECTOR, DemoDetr
from pipeline.attacks.detr_patch import DetrRun
from pipeline.evaluation.coco_map import per_image_ap
from pipeline.evaluation.detr_runs import DetrAttackPlan
from pipeline.evaluation.intervals import paired_bootstrap
from stages.attack_detr import attack_of


def main() -> None:
    dev = device()
    demo = DemoDetr.load(dev)
    cfg = demo.cfg
    planned = [DetrRun(side, objective) for side in cfg.patch_px for objective in cfg.objectives
               if objective != "random"]
    scored, seconds = {}, {}
    for precision in ("fp32", "bf16"):
        attack = attack_of(demo.detector, cfg.model_copy(update={"amp": precision == "bf16", "map_at_steps": []}))
        plan = DetrAttackPlan(attack, planned, demo.inputs, demo.ids, tuple(cfg.centre), cfg.batch_size,
                              demo.params.seed)
        synchronize(dev)
        start = time.perf_counter()
        results = plan.run(keep=0)
        synchronize(dev)
        seconds[precision] = time.perf_counter() - start
        for run in planned:
            corner, boxes = demo.patch_boxes(run.size)
            stats, detections = demo.scored(results[run.label].patched(demo.inputs, corner), boxes)
            scored[run.label, precision] = stats["AP"], per_image_ap(demo.val.instances, detections, demo.ids, boxes)
    runs = {}
    for run in planned:
        (fp32, fp32_images), (bf16, bf16_images) = scored[run.label, "fp32"], scored[run.label, "bf16"]
        ids = [i for i in demo.ids if fp32_images[i] >= 0 and bf16_images[i] >= 0]
        runs[run.label] = {"AP_fp32": fp32, "AP_bf16": bf16,
                           "bf16 - fp32": paired_bootstrap([bf16_images[i] for i in ids],
                                                           [fp32_images[i] for i in ids])}
    save("detr_bf16", {"machine": machine(dev), "detector": DETECTOR, "images": len(demo.ids), "steps": cfg.steps,
                       "seconds": seconds, "runs": runs}, dev)


if __name__ == "__main__":
    main()

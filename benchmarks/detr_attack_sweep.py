"""What limits the DETR patch attack on the demo detector (docs/detection.md): mAP@[.5:.95] with the seed's
exclusion rule under each objective against the patch side, the number of steps, the optimiser and the L1,2
normalisation of L_kq^(1), with the attention on the patch key, on the demo's attacked val images.

Needs the demo's `train_detr@scenes_rtdetr` output (run `dvc repro train_detr@scenes_rtdetr` first); the other
settings are params.yaml's `attack_detr`. A run is the same library plan the stage makes (`DetrAttackPlan`), one run at a time.
Run: python -m benchmarks.detr_attack_sweep   → benchmarks/results/detr_attack_sweep.json (≈ 12 min on 2 CPU cores);
the file is written after every run, and a second call keeps the runs it already holds and does the rest.
"""

from __future__ import annotations

import json
import time

from benchmarks.common import device, machine, result_path, save
from benchmarks.demo_detr import DETECTOR, DemoDetr
from pipeline.attacks.detr_patch import DetrPatchAttack, DetrRun
from pipeline.evaluation.detr_runs import DetrAttackPlan

# (objective, patch side, steps, optimiser, normalise): the patch sides at the demo's 60 steps, then the demo's
# 20 px patch with more steps, momentum and without the normalisation
RUNS = ([(objective, side, 60, "plain", True) for side in (12, 16, 24) for objective in ("ce", "ce+kq", "kq")]
        + [("ce+kq", 20, 250, "plain", True), ("ce+kq", 20, 100, "momentum", True), ("ce+kq", 20, 100, "plain", False)])


def main() -> None:
    dev = device()
    demo = DemoDetr.load(dev)
    cfg = demo.cfg
    results = {"machine": machine(dev), "detector": DETECTOR, "images": len(demo.ids), "centre": cfg.centre,
               "runs": []}
    previous = result_path("detr_attack_sweep", dev)
    if previous.exists():
        results["runs"] = json.loads(previous.read_text())["runs"]
    done = {(r["objective"], r["patch_px"], r["steps"], r["optimiser"], r["normalise"]) for r in results["runs"]}
    for objective, side, steps, optimiser, normalise in RUNS:
        if (objective, side, steps, optimiser, normalise) in done:
            continue
        corner, boxes = demo.patch_boxes(side)
        start = time.perf_counter()
        attack = DetrPatchAttack(demo.detector, steps, cfg.step_size_255 / 255,
                                 cfg.momentum if optimiser == "momentum" else None, cfg.attention_weight, normalise,
                                 cfg.amp)
        planned = DetrRun(side, objective)
        plan = DetrAttackPlan(attack, [planned], demo.inputs, demo.ids, tuple(cfg.centre), cfg.batch_size,
                              demo.params.seed)
        run = plan.run(keep=0, label=planned.label)[planned.label]
        clean = demo.scored(demo.inputs, boxes)[0]
        patched = demo.scored(run.patched(demo.inputs, corner), boxes)[0]
        area = side ** 2 / demo.inputs[0][0].numel()
        results["runs"].append({"objective": objective, "patch_px": side, "area_share": area, "steps": steps,
                                "optimiser": optimiser, "normalise": normalise, "clean_AP": clean["AP"],
                                "AP": patched["AP"],
                                "attention_on_patch": run.attention_after.mean().item(),
                                "seconds": time.perf_counter() - start})
        save("detr_attack_sweep", results, dev)


if __name__ == "__main__":
    main()

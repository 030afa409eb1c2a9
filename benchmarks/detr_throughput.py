"""DETR patch attack (seed 003 §5.3) iterations/s, images/s, and the ratio to a plain forward+backward of the same batch.

One DetrPatchAttack iteration (objective L_ce + L_kq^(1)) is one forward and one backward of the patched batch plus
the first encoder layer's q/k capture; the reference is detector(x_p) → no-object loss → ∇_p. Several images per
batch, each with its own patch. Cases: the demo Conditional DETR (params.yaml, random weights, 96×128 px) and
DETR-R50 (ResNet-50 backbone, 6+6 layers, 100 queries: facebook/detr-resnet-50's architecture with random weights)
at 800×1066 px; on a CPU batch 2 and 2 iterations for R50, on a GPU batch 8 in fp32 and in bf16 autocast.
Run: python -m benchmarks.detr_throughput   → benchmarks/results/detr_throughput.json
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from benchmarks.common import best_time, device, machine, save
from pipeline.attacks.base import frozen_eval
from pipeline.attacks.detr_patch import DetrPatchAttack, DetrRun
from pipeline.attacks.patch import apply_patch
from pipeline.models.detr import detector_from_config

R50 = {"model_type": "detr", "num_queries": 100, "backbone": {"embedding_size": 64, "hidden_sizes": [256, 512, 1024, 2048],
                                                               "depths": [3, 4, 6, 3], "layer_type": "bottleneck",
                                                               "out_features": ["stage4"]}}


def demo_config() -> dict:
    return next(iter(yaml.safe_load(Path("params.yaml").read_text())["train_detr"].values()))["config"]


def cases(dev: torch.device) -> dict:
    """name → (config, (height, width), batch, bf16, iterations timed)."""
    demo = {"demo_detr@96x128": (demo_config(), (96, 128), 25, False, 10)}
    if dev.type != "cuda":
        return {**demo, "detr_r50@800x1066_fp32": (R50, (800, 1066), 2, False, 2)}
    return {**demo, "detr_r50@800x1066_fp32": (R50, (800, 1066), 8, False, 10),
            "detr_r50@800x1066_bf16": (R50, (800, 1066), 8, True, 10)}


def main() -> None:
    dev = device()
    results = {"machine": machine(dev), "cases": {}}
    for name, (config, (height, width), batch, amp, steps) in cases(dev).items():
        torch.manual_seed(0)
        detector = detector_from_config(config, [str(i) for i in range(80)], {"shortest_edge": height}).to(dev).eval()
        pixels, mask = detector.pad([torch.rand(3, height, width, device=dev) for _ in range(batch)])
        grid = detector.token_grid(pixels, mask)
        corners = torch.full((batch, 2), 48, device=dev)
        tokens = torch.full((batch,), 2 * grid.shape[2] + 2, device=dev)
        side = 64 if height > 400 else 16
        attack = DetrPatchAttack(detector, steps, amp=amp)
        runs, initial = [DetrRun(side, "ce+kq")] * batch, [torch.rand(3, side, side, device=dev) for _ in range(batch)]

        def reference():
            patch = torch.rand(batch, 3, side, side, device=dev, requires_grad=True)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                logits = detector(apply_patch(pixels, patch, corners, 1), mask).logits
            torch.autograd.grad(detector.no_object_log_likelihood(logits).sum(), patch)

        with frozen_eval(detector):
            plain = best_time(lambda: [reference() for _ in range(steps + 1)], dev, repeats=2)
        attacked = best_time(lambda: attack(pixels, mask, runs, corners, tokens, grid.flatten(1), initial), dev,
                             repeats=2)
        results["cases"][name] = {"batch": batch, "amp_bf16": amp, "steps": steps,
                                  "attack_iterations_per_s": (steps + 1) / attacked,
                                  "attack_images_per_s": batch * (steps + 1) / attacked,
                                  "plain_iterations_per_s": (steps + 1) / plain, "ratio": plain / attacked}
    save("detr_throughput", results, dev)


if __name__ == "__main__":
    main()

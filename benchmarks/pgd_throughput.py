"""PGD throughput of the library against a minimal hand-written PGD loop (target: at most 5% slower).

Same model, batch, ε, step size and number of steps; both produce robust-accuracy flags (one final
forward pass). The library runs with skip_misclassified=False and no early stop so both do the same work.
Run: python -m benchmarks.pgd_throughput   → benchmarks/results/pgd_throughput.json
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmarks.common import best_time, device, machine, save
from pipeline.attacks.base import frozen_eval
from pipeline.attacks.pgd import PGD
from pipeline.models.registry import build_network
from pipeline.models.wrappers import Normalized

EPS, STEP, STEPS = 8 / 255, 2 / 255, 10
CASES = {"small_cnn16@32": ({"arch": "small_cnn", "width": 16}, 32, 256),
         "resnet18@64": ({"arch": "resnet18", "stem": "standard"}, 64, 128)}


def hand_pgd(model, images, labels):
    adversarial = (images + (torch.rand_like(images) * 2 - 1) * EPS).clamp(0, 1)
    for _ in range(STEPS):
        adversarial.requires_grad_(True)
        loss = F.cross_entropy(model(adversarial), labels)
        (grad,) = torch.autograd.grad(loss, adversarial)
        adversarial = torch.min(torch.max(adversarial.detach() + STEP * grad.sign(), images - EPS), images + EPS).clamp(0, 1)
    with torch.no_grad():
        return model(adversarial).argmax(1) != labels


def main() -> None:
    dev = device()
    results = {"machine": machine(dev), "steps": STEPS, "cases": {}}
    for name, (arch, size, batch) in CASES.items():
        torch.manual_seed(0)
        model = Normalized(build_network(arch, 10), [0.5] * 3, [0.25] * 3).to(dev).eval()
        images, labels = torch.rand(batch, 3, size, size, device=dev), torch.randint(0, 10, (batch,), device=dev)
        library = PGD(model, EPS, steps=STEPS, step_size=STEP, skip_misclassified=False)
        with frozen_eval(model):
            hand = best_time(lambda: hand_pgd(model, images, labels), dev)
        lib = best_time(lambda: library(images, labels), dev)
        results["cases"][name] = {"batch": batch, "hand_images_per_s": batch / hand, "library_images_per_s": batch / lib,
                                  "library_slowdown": lib / hand - 1, "within_5_percent": lib <= 1.05 * hand}
    save("pgd_throughput", results, dev)


if __name__ == "__main__":
    main()

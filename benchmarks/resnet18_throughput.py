"""Images/s of ResNet-18 at 64 px, one forward + backward w.r.t. the input (the unit cost of every attack step).

Both stems, fp32 and (on CUDA) bf16 autocast. Run: python -m benchmarks.resnet18_throughput
→ benchmarks/results/resnet18_throughput[_cuda].json
"""

from __future__ import annotations

import torch

from benchmarks.common import best_time, device, machine, save
from pipeline.attacks.base import frozen_eval
from pipeline.attacks.losses import cross_entropy
from pipeline.models.forward import model_logits
from pipeline.models.registry import build_network

BATCH = {"cuda": 256, "cpu": 64}


def input_gradient(model, images, labels, amp: bool):
    images = images.detach().requires_grad_(True)
    loss = cross_entropy(model_logits(model, images, None, amp), labels).sum()
    return torch.autograd.grad(loss, images)[0]


def main() -> None:
    dev = device()
    batch = BATCH[dev.type]
    results = {"machine": machine(dev), "image_size": 64, "batch": batch, "images_per_s": {}}
    for stem in ("standard", "small"):
        model = build_network({"arch": "resnet18", "stem": stem}, 10).to(dev)
        images, labels = torch.rand(batch, 3, 64, 64, device=dev), torch.randint(0, 10, (batch,), device=dev)
        for amp in (False, True) if dev.type == "cuda" else (False,):
            with frozen_eval(model):
                seconds = best_time(lambda: input_gradient(model, images, labels, amp), dev, repeats=3)
            results["images_per_s"][f"{stem}_stem_{'bf16' if amp else 'fp32'}"] = batch / seconds
    save("resnet18_throughput", results, dev)


if __name__ == "__main__":
    main()

"""Attention-Fool patch attack iterations/s against a plain forward+backward of the same batch (target ≥ 0.9×).

One iteration of PatchAttack (momentum, no early stop so every iteration sees the whole batch) costs one forward
and one backward; the reference is model(x_p) → CE → ∇_p on the same patched batch. Objectives L_ce, L_ce + L_kq*
and L_ce + L_kq; the attention terms add their own (small) forward and backward work.
Cases: the demo ViT (4 px tokens, 32 px) and ViT-B/16 at 224 px with random weights (batch 4 on a CPU; batch 64
in fp32 and in bf16 on a GPU).
Run: python -m benchmarks.patch_throughput   → benchmarks/results/patch_throughput.json
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmarks.common import best_time, device, machine, save
from pipeline.attacks.base import frozen_eval
from pipeline.attacks.patch import PatchAttack, PatchPlacement, apply_patch
from pipeline.models.forward import model_logits
from pipeline.models.vit import classifier_of, image_processor, vit_from_config

STEPS = 10
OBJECTIVES = ("ce", "ce+kq_cls", "ce+kq")
DEMO = {"model_type": "vit", "patch_size": 4, "hidden_size": 96, "num_hidden_layers": 4, "num_attention_heads": 4,
        "intermediate_size": 192}
VIT_B16 = {"model_type": "vit", "patch_size": 16, "hidden_size": 768, "num_hidden_layers": 12,
           "num_attention_heads": 12, "intermediate_size": 3072}


def cases(dev: torch.device) -> dict:
    """name → (config, image size, batch, bf16, iterations timed); ViT-B/16 at batch 4 on a CPU."""
    if dev.type != "cuda":
        return {"demo_vit@32": (DEMO, 32, 100, False, STEPS), "vit_b16@224_fp32": (VIT_B16, 224, 4, False, 3)}
    return {"demo_vit@32": (DEMO, 32, 100, False, STEPS), "vit_b16@224_fp32": (VIT_B16, 224, 64, False, STEPS),
            "vit_b16@224_bf16": (VIT_B16, 224, 64, True, STEPS)}


def reference_iteration(model, images, labels, patch, cells, token_size, amp):
    """The plain cost: forward the patched batch, CE, gradient with respect to the patch."""
    patch = patch.detach().requires_grad_(True)
    loss = F.cross_entropy(model_logits(model, apply_patch(images, patch, cells, token_size), amp=amp), labels)
    torch.autograd.grad(loss, patch)


def main() -> None:
    dev = device()
    results = {"machine": machine(dev), "cases": {}}
    for name, (config, size, batch, amp, steps) in cases(dev).items():
        torch.manual_seed(0)
        model = classifier_of(vit_from_config(config, size, [str(i) for i in range(10)]),
                              image_processor(size, [0.5] * 3, [0.5] * 3)).to(dev).eval()
        images, labels = torch.rand(batch, 3, size, size, device=dev), torch.randint(0, 10, (batch,), device=dev)
        cells = torch.zeros(batch, 2, dtype=torch.long, device=dev)
        placement = PatchPlacement(model.token_size, model.grid_width, model.prefix_tokens)
        patch = torch.rand(batch, 3, model.token_size, model.token_size, device=dev)
        with frozen_eval(model):
            plain = best_time(lambda: [reference_iteration(model, images, labels, patch, cells, model.token_size, amp)
                                       for _ in range(steps + 1)], dev, repeats=3)
        result = {"batch": batch, "amp_bf16": amp, "steps": steps, "plain_iterations_per_s": (steps + 1) / plain}
        for objective in OBJECTIVES:
            attack = PatchAttack(model, placement, steps, objective, momentum=0.9, amp=amp, early_stop=False)
            attacked = best_time(lambda: attack(images, labels, cells), dev, repeats=3)
            result[objective] = {"attack_iterations_per_s": (steps + 1) / attacked, "ratio": plain / attacked,
                                 "meets_0_9": plain / attacked >= 0.9}
        results["cases"][name] = result
    save("patch_throughput", results, dev)


if __name__ == "__main__":
    main()

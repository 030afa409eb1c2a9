"""Clean accuracy and attack success over a whole sample set, batch by batch on the device."""

from __future__ import annotations

import torch
from torch import nn
from tqdm import tqdm

from pipeline.attacks.base import Attack, frozen_eval
from pipeline.data.dataset import SampleTensors
from pipeline.models.forward import model_logits


@torch.no_grad()
def correct_flags(model: nn.Module, samples: SampleTensors, batch_size: int, device: torch.device,
                  mask_mode: str, amp: bool = False) -> torch.Tensor:
    """Per-sample bool: the model (in eval mode) classifies the clean image correctly."""
    with frozen_eval(model):
        flags = [model_logits(model, images, mask, amp).argmax(1) == labels
                 for images, mask, labels in samples.batches(batch_size, device, mask_mode)]
    return torch.cat(flags).cpu() if flags else torch.zeros(0, dtype=torch.bool)


def attack_outcomes(attack: Attack, samples: SampleTensors, batch_size: int, device: torch.device, mask_mode: str,
                    desc: str | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The attack over the whole sample set, batch by batch: (per-sample success, clean mistakes counting as
    successes; for an attack that stops early, the steps to the first success, −1 if none, else None).

    A masked model multiplies its input by its mask, so δ is confined to the mask: pixels outside it
    cannot change the output, and Square spends no queries there.
    """
    batches = samples.batches(batch_size, device, mask_mode)
    total = -(-len(samples) // batch_size)
    success, steps = [torch.zeros(0, dtype=torch.bool)], [torch.zeros(0, dtype=torch.long)]
    for images, mask, labels in tqdm(batches, total=total, desc=desc, leave=False, disable=desc is None):
        result = attack(images, labels, model_mask=mask, perturb_mask=mask)     # its images are not kept
        success.append(result.success.cpu())
        steps.append(None if result.first_success is None else result.first_success.cpu())
    return torch.cat(success), None if any(s is None for s in steps) else torch.cat(steps)


def success_flags(attack: Attack, samples: SampleTensors, batch_size: int, device: torch.device, mask_mode: str,
                  desc: str | None = None) -> torch.Tensor:
    """Per-sample bool: the attack's output is misclassified (clean mistakes count as successes)."""
    return attack_outcomes(attack, samples, batch_size, device, mask_mode, desc)[0]


def accuracy(model: nn.Module, samples: SampleTensors, batch_size: int, device: torch.device, mask_mode: str) -> float:
    """The share of correctly classified clean samples (the exact fraction, as the training curves give it)."""
    return correct_flags(model, samples, batch_size, device, mask_mode).double().mean().item()

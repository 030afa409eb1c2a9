"""Training on attacked examples: min_θ CE(f(x + δ), y) with δ from a given attack (Madry et al. 2018, eq. 2.1)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from pipeline.attacks.base import Attack
from pipeline.defenses import StepOutput, TrainingStep
from pipeline.models.forward import model_logits


def adversarial_step(model: nn.Module, attack: Attack, amp: bool) -> TrainingStep:
    """The attack runs with the model in eval mode (frozen BN, base class); the update in train mode."""

    def step(images, labels, model_mask):
        adversarial = attack(images, labels, model_mask=model_mask).adversarial
        logits = model_logits(model, adversarial, model_mask, amp)
        return StepOutput(F.cross_entropy(logits, labels), logits, labels)

    return step

"""Training on attacked examples: min_θ CE(f(x + δ), y) with δ from a given attack (Madry et al. 2018, eq. 2.1)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from pipeline.attacks.base import Attack
from pipeline.attacks.pgd import PGD
from pipeline.defenses import RecipeSettings, StepOutput, TrainingStep
from pipeline.models.forward import model_logits


def training_pgd(model: nn.Module, settings: RecipeSettings) -> PGD:
    """The classifier's `adversary`: L∞ PGD-k with random start on every sample (none skipped)."""
    return PGD(model, settings.eps, steps=settings.steps, step_size=settings.step_size, random_start=True,
               skip_misclassified=False, amp=settings.amp, seed=None)


def adversarial_step(model: nn.Module, attack: Attack, amp: bool) -> TrainingStep:
    """The attack runs with the model in eval mode (frozen BN, base class); the update in train mode."""

    def step(images, labels, model_mask, start_noise):
        adversarial = attack(images, labels, model_mask=model_mask, start_noise=start_noise).adversarial
        logits = model_logits(model, adversarial, model_mask, amp)
        return StepOutput(F.cross_entropy(logits, labels), logits, labels)

    return step

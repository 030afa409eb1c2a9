"""Madry adversarial training (Madry et al. 2018): train on k-step L∞ PGD with random start.

methods.md P1 defaults: ε = 8/255, step 2/255, 7 steps. Every sample is attacked (none skipped).
"""

from __future__ import annotations

from torch import nn

from pipeline.attacks.pgd import PGD
from pipeline.defenses import RecipeSettings, TrainingStep
from pipeline.defenses._adversarial import adversarial_step


def build(model: nn.Module, settings: RecipeSettings) -> TrainingStep:
    attack = PGD(model, settings.eps, steps=settings.steps, step_size=settings.step_size, random_start=True,
                 skip_misclassified=False, amp=settings.amp, seed=None)
    return adversarial_step(model, attack, settings.amp)

"""Madry adversarial training (Madry et al. 2018): train on k-step L∞ PGD with random start.

methods.md P1 defaults: ε = 8/255, step 2/255, 7 steps. Every sample is attacked (none skipped).
"""

from __future__ import annotations

from torch import nn

from pipeline.defenses import RecipeSettings, TrainingStep
from pipeline.defenses._adversarial import adversarial_step, training_pgd


def build(model: nn.Module, settings: RecipeSettings) -> TrainingStep:
    return adversarial_step(model, training_pgd(model, settings), settings.amp)

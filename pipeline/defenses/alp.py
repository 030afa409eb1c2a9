"""Adversarial logit pairing (Kannan, Kurakin & Goodfellow 2018): clean + adversarial CE + λ·||z(x) − z(x̃)||².

x̃ is the classifier's `adversary` (L∞ PGD with random start); λ = options.logit_weight (methods.md P2: 0.5).
"""

from __future__ import annotations

from pydantic import Field
from torch import nn

from pipeline.config import Strict
from pipeline.defenses import RecipeSettings, TrainingStep
from pipeline.defenses._adversarial import training_pgd
from pipeline.defenses._pairing import paired_step


class Options(Strict):
    logit_weight: float = Field(default=0.5, ge=0)


def build(model: nn.Module, settings: RecipeSettings) -> TrainingStep:
    options = Options.model_validate(settings.options)
    return paired_step(model, training_pgd(model, settings), options.logit_weight, 0.0, settings.amp)

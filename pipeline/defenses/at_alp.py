"""AT+ALP (seed 001, methods.md P2): ALP plus pairing of Zagoruyko–Komodakis attention maps of every block.

λ_ALP = options.logit_weight (0.5), λ_AT = options.attention_weight (1000, the AT paper's β, on the mean over
images and attention-map elements: see _pairing.py).
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
    attention_weight: float = Field(default=1000.0, ge=0)


def build(model: nn.Module, settings: RecipeSettings) -> TrainingStep:
    options = Options.model_validate(settings.options)
    return paired_step(model, training_pgd(model, settings), options.logit_weight, options.attention_weight,
                       settings.amp)

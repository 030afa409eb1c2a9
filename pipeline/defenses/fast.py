"""Fast adversarial training (Wong, Rice & Kolter 2020, Alg. 3): FGSM from a uniform random start.

δ ~ U(−ε, ε); δ ← clip_ε(δ + α·sign ∇_δ CE), α = 1.25ε (the paper's step); train on x + δ. The
adversary's `step_255`/`steps` are not used: this recipe always takes one step of 1.25ε.
"""

from __future__ import annotations

from torch import nn

from pipeline.attacks.pgd import PGD
from pipeline.defenses import RecipeSettings, TrainingStep
from pipeline.defenses._adversarial import adversarial_step

STEP_RATIO = 1.25


def build(model: nn.Module, settings: RecipeSettings) -> TrainingStep:
    attack = PGD(model, settings.eps, steps=1, step_size=STEP_RATIO * settings.eps, random_start=True,
                 skip_misclassified=False, amp=settings.amp, seed=None)
    return adversarial_step(model, attack, settings.amp)

"""Natural training: minimise CE(f(x), y) on clean examples."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from pipeline.defenses import RecipeSettings, StepOutput, TrainingStep
from pipeline.models.forward import model_logits


def build(model: nn.Module, settings: RecipeSettings) -> TrainingStep:
    def step(images, labels, model_mask, start_noise):
        logits = model_logits(model, images, model_mask, settings.amp)
        return StepOutput(F.cross_entropy(logits, labels), logits, labels)

    return step

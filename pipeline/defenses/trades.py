"""TRADES (Zhang et al. 2019, eq. 5): CE(f(x), y) + β·KL(f(x) ‖ f(x̃)), x̃ = argmax_{||x̃−x||∞≤ε} KL(f(x) ‖ f(x̃)).

Inner maximisation as in the authors' code: start at x + 0.001·N(0, 1), `adversary.steps` signed steps
of `adversary.step_255` on the KL with the model in eval mode; the outer KL is not detached on either side.
β = options.beta (6, the paper's CIFAR-10 value).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from pipeline.attacks.base import frozen_eval, project
from pipeline.config import Strict
from pipeline.defenses import RecipeSettings, StepOutput, TrainingStep
from pipeline.models.forward import model_logits

START_NOISE = 0.001


class Options(Strict):
    beta: float = Field(default=6.0, ge=0)


def kl(adversarial_logits: torch.Tensor, clean_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(clean) ‖ softmax(adversarial)), mean over the batch."""
    return F.kl_div(adversarial_logits.log_softmax(1), clean_logits.softmax(1), reduction="batchmean")


def build(model: nn.Module, settings: RecipeSettings) -> TrainingStep:
    options = Options.model_validate(settings.options)

    def maximise_kl(images, model_mask, start_noise):
        with frozen_eval(model):
            with torch.no_grad():
                clean = model_logits(model, images, model_mask, settings.amp)
            adversarial = project(images + START_NOISE * start_noise, images, settings.eps, "linf", None)
            for _ in range(settings.steps):
                adversarial = adversarial.detach().requires_grad_(True)
                with torch.enable_grad():
                    loss = kl(model_logits(model, adversarial, model_mask, settings.amp), clean)
                    (grad,) = torch.autograd.grad(loss, adversarial)
                adversarial = project(adversarial.detach() + settings.step_size * grad.sign(), images, settings.eps,
                                      "linf", None)
        return adversarial

    def step(images, labels, model_mask, start_noise):
        adversarial = maximise_kl(images, model_mask, start_noise)
        clean = model_logits(model, images, model_mask, settings.amp)
        natural, robust = F.cross_entropy(clean, labels), kl(model_logits(model, adversarial, model_mask, settings.amp), clean)
        return StepOutput(natural + options.beta * robust, clean, labels, {"ce": natural, "kl": robust})

    return step

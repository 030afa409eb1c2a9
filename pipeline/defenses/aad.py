"""AAD, attention rectification and preservation (seed 002, Wu, Sang et al. 2022; methods.md P3), on a base recipe.

L = L_c + α·L_r + β·L_p, with g = Grad-CAM of the true class at `options.layer` (kept in the graph):
  L_c  multi-label soft-margin loss on one-hot labels over the base recipe's examples (madry: x_adv;
       alp: x and x_adv, plus ALP's logit pairing);
  L_r  = −[ ||σ(f(x)) − σ(f(x^m))||₂ + ||σ(f(x_adv)) − σ(f(x_adv^m))||₂ ],  x^m = x ⊙ (1 − Att(x));
  L_p  = ||g(x) − g(x_adv)||₁;  α = β = 0.01 (the paper's best).
`variant: code_v1` follows the authors' code instead: spatial softmax in g, squared L2 in both terms,
weights cls:rect:pres = 8:4:1 and one-step least-likely (Step-LL) examples at ε = 19/255.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from pipeline.attacks.step_ll import StepLL
from pipeline.attention.gradcam import attention_area, grad_cam
from pipeline.config import Strict
from pipeline.defenses import RecipeSettings, StepOutput, TrainingStep
from pipeline.defenses._adversarial import training_pgd
from pipeline.defenses._pairing import logit_pairing, twice
from pipeline.models.forward import model_logits

CODE_V1_WEIGHTS = (8.0, 4.0, 1.0)      # cls : rect : pres in the authors' code
CODE_V1_EPS = 19 / 255                 # their Step-LL training ε


class Options(Strict):
    base: Literal["madry", "alp"] = "madry"
    alpha: float = Field(default=0.01, ge=0)          # weight of L_r
    beta: float = Field(default=0.01, ge=0)           # weight of L_p
    logit_weight: float = Field(default=0.5, ge=0)    # ALP's λ when base is alp
    variant: Literal["paper", "code_v1"] = "paper"
    kappa: float | None = None                        # Att threshold; None: the per-image mean of g
    layer: str | None = None                          # Grad-CAM layer; None: the last block


def soft_margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Multi-label soft-margin loss on one-hot targets (the paper's L_c)."""
    return F.multilabel_soft_margin_loss(logits, F.one_hot(labels, logits.shape[1]).float())


def l1(difference: torch.Tensor) -> torch.Tensor:
    return difference.flatten(1).abs().sum(1)


def l2(difference: torch.Tensor) -> torch.Tensor:
    return difference.flatten(1).norm(dim=1)


def squared_l2(difference: torch.Tensor) -> torch.Tensor:
    return difference.flatten(1).pow(2).sum(1)


def build(model: nn.Module, settings: RecipeSettings) -> TrainingStep:
    options = Options.model_validate(settings.options)
    paper = options.variant == "paper"
    attack = training_pgd(model, settings) if paper else StepLL(model, CODE_V1_EPS, skip_misclassified=False,
                                                                 amp=settings.amp, seed=None)
    weights = (1.0, options.alpha, options.beta) if paper else CODE_V1_WEIGHTS
    rect_norm, pres_norm = (l2, l1) if paper else (squared_l2, squared_l2)

    def step(images, labels, model_mask):
        adversarial = attack(images, labels, model_mask=model_mask).adversarial
        both = torch.cat([images, adversarial])
        cams = grad_cam(model, both, torch.cat([labels, labels]), twice(model_mask), options.layer,
                        create_graph=True, activation="relu" if paper else "softmax", amp=settings.amp)
        clean, attacked = cams.logits.chunk(2)
        if options.base == "madry":
            classification, logits, trained_labels = soft_margin(attacked, labels), attacked, labels
        else:
            classification = soft_margin(clean, labels) + soft_margin(attacked, labels) \
                + options.logit_weight * logit_pairing(clean, attacked)
            logits, trained_labels = cams.logits, torch.cat([labels, labels])
        removed = both * (1 - attention_area(cams.cam, both.shape[-2:], options.kappa))
        masked_logits = model_logits(model, removed, twice(model_mask), settings.amp)
        rectification = -rect_norm(cams.logits.softmax(1) - masked_logits.softmax(1)).view(2, -1).sum(0).mean()
        clean_cam, adversarial_cam = cams.cam.chunk(2)
        preservation = pres_norm(clean_cam - adversarial_cam).mean()
        loss = weights[0] * classification + weights[1] * rectification + weights[2] * preservation
        terms = {"classification": classification, "rectification": rectification, "preservation": preservation}
        return StepOutput(loss, logits, trained_labels, terms)

    return step

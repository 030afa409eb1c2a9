"""AAD, attention rectification and preservation (seed 002, Wu, Sang et al. 2022; methods.md P3), on a base recipe.

L = L_c + α·L_r + β·L_p, with g = Grad-CAM of the true class at `options.layer` (kept in the graph):
  L_c  softmax cross-entropy over the base recipe's examples, as in the authors' code (AAD_frame/AAD_train.py):
       madry: x_adv; alp: x and x_adv as one mixed 2B batch, plus ALP's logit pairing at Kannan et al.'s scale
       (_pairing.py). `classification: soft_margin` is the paper text's multi-label soft margin on one-hot labels
       (a mean of C one-vs-rest sigmoids: on many classes it pushes every logit negative and Grad-CAM to zero);
  L_r  = −[ ||σ(f(x)) − σ(f(x^m))||₂ + ||σ(f(x_adv)) − σ(f(x_adv^m))||₂ ],  x^m = x ⊙ (1 − Att(x)); the forward
       pass on x^m runs with BatchNorm in eval mode, so masked images do not move the running statistics;
  L_p  = ||g(x) − g(x_adv)||₁;  α = β = 0.01 (the paper's best).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from pipeline.attention.gradcam import attention_area, grad_cam
from pipeline.config import Strict
from pipeline.defenses import RecipeSettings, StepOutput, TrainingStep
from pipeline.defenses._adversarial import training_pgd
from pipeline.defenses._pairing import logit_pairing, twice
from pipeline.models.batch_norm import batch_norm_frozen
from pipeline.models.forward import model_logits


class Options(Strict):
    base: Literal["madry", "alp"] = "madry"
    alpha: float = Field(default=0.01, ge=0)          # weight of L_r
    beta: float = Field(default=0.01, ge=0)           # weight of L_p
    logit_weight: float = Field(default=0.5, ge=0)    # ALP's λ when base is alp
    classification: Literal["cross_entropy", "soft_margin"] = "cross_entropy"   # L_c: the authors' code | paper text
    kappa: float | None = None                        # Att threshold; None: the per-image mean of g
    layer: str | None = None                          # Grad-CAM layer; None: the last block


def soft_margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Multi-label soft-margin loss on one-hot targets (the paper text's L_c)."""
    return F.multilabel_soft_margin_loss(logits, F.one_hot(labels, logits.shape[1]).float())


def build(model: nn.Module, settings: RecipeSettings) -> TrainingStep:
    options = Options.model_validate(settings.options)
    attack = training_pgd(model, settings)
    classify = F.cross_entropy if options.classification == "cross_entropy" else soft_margin

    def step(images, labels, model_mask, start_noise):
        adversarial = attack(images, labels, model_mask=model_mask, start_noise=start_noise).adversarial
        both = torch.cat([images, adversarial])
        cams = grad_cam(model, both, torch.cat([labels, labels]), twice(model_mask), options.layer,
                        create_graph=True, amp=settings.amp)
        clean, attacked = cams.logits.chunk(2)
        if options.base == "madry":
            classification, logits, trained_labels = classify(attacked, labels), attacked, labels
        else:
            logits, trained_labels = cams.logits, torch.cat([labels, labels])
            classification = classify(logits, trained_labels) + options.logit_weight * logit_pairing(clean, attacked)
        removed = both * (1 - attention_area(cams.cam, both.shape[-2:], options.kappa))
        with batch_norm_frozen(model):
            masked_logits = model_logits(model, removed, twice(model_mask), settings.amp)
        rectification = -(cams.logits.softmax(1) - masked_logits.softmax(1)).norm(dim=1).view(2, -1).sum(0).mean()
        clean_cam, adversarial_cam = cams.cam.chunk(2)
        preservation = (clean_cam - adversarial_cam).flatten(1).abs().sum(1).mean()
        loss = classification + options.alpha * rectification + options.beta * preservation
        terms = {"classification": classification, "rectification": rectification, "preservation": preservation}
        return StepOutput(loss, logits, trained_labels, terms)

    return step

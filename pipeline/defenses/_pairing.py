"""Clean + adversarial training with pairing terms (methods.md P2): ALP (Kannan et al. 2018) and AT+ALP.

L = mean over the mixed 2B batch of CE(f(·), y)                       (clean and adversarial halves together)
    + λ_ALP · mean_{i,k} (z_k(x_i) − z_k(x̃_i))²                         (a mean over images AND logits)
    + λ_AT · Σ_j mean_i ||at(A_j(x_i)) − at(A_j(x̃_i))||² / (h_j·w_j)   (j: every block of the classifier)
The scale is Kannan et al.'s code (tensorflow/models adversarial_logit_pairing: the cross-entropy averaged over the
mixed batch, the pairing as `mean_squared_error(weights=λ)`), so λ_ALP = 0.5 means what it means in their paper.
The attention term is a mean over images *and* map elements: the AT paper's β = 10³ is "divided by the number of
elements in the attention map and batch size for each layer" (Zagoruyko & Komodakis 2017, §4). x̃ = the
classifier's training PGD on the current model; gradients flow through both branches. Clean and adversarial images
go through one forward pass (as Kannan et al.'s mixed batches).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.attacks.base import Attack
from pipeline.attention.activation_maps import activation_map
from pipeline.attention.layers import block_classifier, captured_outputs
from pipeline.defenses import StepOutput, TrainingStep
from pipeline.models.forward import model_logits


def twice(tensor: torch.Tensor | None) -> torch.Tensor | None:
    return None if tensor is None else torch.cat([tensor, tensor])


def logit_pairing(clean: torch.Tensor, adversarial: torch.Tensor) -> torch.Tensor:
    """mean_{i,k} (z_k(x_i) − z_k(x̃_i))²: Kannan et al.'s mean squared error over images and logits."""
    return (clean - adversarial).pow(2).mean()


def attention_pairing(clean: torch.Tensor, adversarial: torch.Tensor) -> torch.Tensor:
    """mean_i ||at(A(x_i)) − at(A(x̃_i))||² / (h·w) for B×(h·w) attention vectors (Zagoruyko–Komodakis)."""
    return (clean - adversarial).pow(2).mean()


def paired_step(model: nn.Module, attack: Attack, logit_weight: float, attention_weight: float,
                amp: bool) -> TrainingStep:
    blocks = list(block_classifier(model).blocks) if attention_weight else []

    def step(images, labels, model_mask, start_noise):
        adversarial = attack(images, labels, model_mask=model_mask, start_noise=start_noise).adversarial
        with captured_outputs(blocks) as features:
            logits = model_logits(model, torch.cat([images, adversarial]), twice(model_mask), amp)
        clean, attacked = logits.chunk(2)
        ce = F.cross_entropy(logits, torch.cat([labels, labels]))              # the mean over the mixed batch
        terms = {"ce": ce, "logit_pairing": logit_pairing(clean, attacked)}
        loss = ce + logit_weight * terms["logit_pairing"]
        if attention_weight:
            maps = [activation_map(f).chunk(2) for f in features]
            terms["attention_pairing"] = sum(attention_pairing(a, b) for a, b in maps)
            loss = loss + attention_weight * terms["attention_pairing"]
        return StepOutput(loss, logits, torch.cat([labels, labels]), terms)

    return step

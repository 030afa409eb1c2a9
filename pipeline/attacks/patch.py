"""Attention-Fool patch attack (Lovisotto et al., CVPR 2022, seed 003; methods.md P4) on a token classifier.

Threat model: one square patch per image overwrites the pixels of a token-aligned box; white box.
p ← clip(p + α_t · sign(d_t), 0, 1), α_t = α_0 · ½(1 + cos(π t / N)), α_0 = 8/255, p_0 ~ U[0, 1];
d_t = ∇ (plain) or m_t = β m_{t−1} + (1 − β) ∇/‖∇‖₂ per image (momentum, β = 0.9).
Objective, maximised: CE(f(x_p), y) (`ce`) plus λ · an attention loss of attacks/attention_fool.py on
the key token under the patch, or the attention loss alone; both summed over images. A sample's patch
is frozen at its first success (misclassification; `early_stop`, default on) and leaves the batch: later
iterations forward and backward only the images still unbroken. The number of updates it took is recorded.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.attacks.attention_fool import ATTENTION_LOSSES, Aggregation, Objective, attention_loss
from pipeline.attacks.base import frozen_eval
from pipeline.models.forward import model_logits
from pipeline.models.hf_attention import attention_layers, captured_query_keys


def parse_objective(objective: str) -> tuple[bool, Objective | None]:
    """"ce", "ce+kq", "kq_cls", … → (whether L_ce is a term, the attention loss or None)."""
    terms = objective.split("+")
    unknown = [t for t in terms if t not in ("ce", *ATTENTION_LOSSES)]
    if unknown or len(terms) > 2 or (len(terms) == 2 and terms[0] != "ce"):
        raise ValueError(f"objective {objective!r}: use ce, {', '.join(ATTENTION_LOSSES)} or ce+<one of those>")
    return "ce" in terms, next((t for t in terms if t != "ce"), None)     # type: ignore[return-value]


def cosine_step(step_size: float, t: int, steps: int) -> float:
    """α_t = α_0 · ½(1 + cos(π t / N)), t = 0 … N − 1."""
    return step_size * 0.5 * (1 + math.cos(math.pi * t / steps))


def ascent_direction(gradient: torch.Tensor, velocity: torch.Tensor,
                     momentum: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(direction whose sign is the step, new velocity): the gradient itself, or with momentum β
    m ← β m + (1 − β) ∇/‖∇‖₂ per image, and m is the direction."""
    if momentum is None:
        return gradient, velocity
    norms = gradient.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (gradient.dim() - 1))
    velocity = momentum * velocity + (1 - momentum) * gradient / norms
    return velocity, velocity


@dataclass(frozen=True)
class PatchPlacement:
    """Token-aligned boxes: each image's patch covers token (row, col) of a grid of `token_size` px tokens."""

    token_size: int              # patch side = one token by default
    grid_width: int              # tokens per image row
    prefix_tokens: int = 1       # CLS (ViT); 2 for DeiT's CLS + distillation tokens

    def key_tokens(self, cells: torch.Tensor) -> torch.Tensor:
        """B×2 (row, col) token cells → the index i* of each cell's key among the model's tokens."""
        return self.prefix_tokens + cells[:, 0] * self.grid_width + cells[:, 1]


def paste_patch_(images: torch.Tensor, patch: torch.Tensor, cells: torch.Tensor, token_size: int,
                 rows: torch.Tensor | None = None) -> torch.Tensor:
    """Writes B×C×s×s `patch` into `images` in place, patch b at token cell cells[b] (row, col) of image rows[b]
    (default: image b); differentiable in `patch` (autograd records the write). Returns `images`."""
    size = patch.shape[-1]
    offsets = torch.arange(size, device=images.device)
    top = (cells[:, 0] * token_size)[:, None, None] + offsets[None, :, None]            # B×s×1
    left = (cells[:, 1] * token_size)[:, None, None] + offsets[None, None, :]           # B×1×s
    batch = torch.arange(len(patch), device=images.device) if rows is None else rows.to(images.device)
    images[batch[:, None, None], :, top, left] = patch.permute(0, 2, 3, 1).to(images.dtype)
    return images


def apply_patch(images: torch.Tensor, patch: torch.Tensor, cells: torch.Tensor, token_size: int) -> torch.Tensor:
    """A copy of B×C×H×W `images` with B×C×s×s `patch` written at each image's token cell (row, col);
    differentiable in `patch`; every pixel outside the boxes is left bit-identical."""
    return paste_patch_(images.clone(), patch, cells, token_size)


@dataclass
class PatchResult:
    patched: torch.Tensor            # B×C×H×W images with their final patches
    patch: torch.Tensor              # B×C×s×s
    success: torch.Tensor            # B bool: misclassified with the patch
    first_success: torch.Tensor      # B long: patch updates before the first success (0: the initial patch), −1 if none
    loss_curve: list[float]          # mean objective per iteration (a frozen image keeps its value at success)
    attention_curve: list[float]     # mean attention weight on the patch token per iteration (post-softmax);
                                     # [] for a model without attention layers
    attention: torch.Tensor | None   # B: each image's attention on its patch token with its final patch; None
                                     # for a model without attention layers


class PatchAttack:
    """The Attention-Fool patch attack; `objective` = ce | ce+kq | ce+kq_cls | kq_cls | ce+patch_fool | …"""

    def __init__(self, model: nn.Module, placement: PatchPlacement, steps: int = 250, objective: str = "ce+kq",
                 step_size: float = 8 / 255, momentum: float | None = None, attention_weight: float = 1.0,
                 normalise: bool = True, aggregation: Aggregation = "smooth_max", patch_size: int | None = None,
                 amp: bool = False, early_stop: bool = True, seed: int = 0):
        self.model, self.placement, self.steps = model, placement, steps
        self.use_ce, self.attention = parse_objective(objective)
        self.step_size, self.momentum, self.attention_weight = step_size, momentum, attention_weight
        self.normalise, self.aggregation, self.amp, self.seed = normalise, aggregation, amp, seed
        self.early_stop = early_stop
        self.patch_size = patch_size or placement.token_size

    def step_size_at(self, t: int) -> float:
        return cosine_step(self.step_size, t, self.steps)

    def objective(self, images: torch.Tensor, labels: torch.Tensor, tokens: torch.Tensor,
                  captured: list) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-image objective, logits) of one forward pass."""
        logits = model_logits(self.model, images, amp=self.amp)
        value = F.cross_entropy(logits, labels, reduction="none") if self.use_ce else torch.zeros_like(labels, dtype=torch.float)
        if self.attention is not None:
            value = value + self.attention_weight * attention_loss(captured, tokens, self.attention, self.normalise,
                                                                   self.aggregation)
        return value, logits

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, cells: torch.Tensor) -> PatchResult:
        with frozen_eval(self.model):
            return self._run(images, labels, cells)

    def _capture(self):
        """q/k capture when the model has attention layers (the attention curve), or the objective needs them."""
        if self.attention is None and not attention_layers(self.model, required=False):
            return nullcontext(None)
        return captured_query_keys(self.model)

    def _run(self, images: torch.Tensor, labels: torch.Tensor, cells: torch.Tensor) -> PatchResult:
        generator = torch.Generator(device=images.device).manual_seed(self.seed)
        shape = (len(images), images.shape[1], self.patch_size, self.patch_size)
        patch = torch.rand(shape, generator=generator, device=images.device)
        tokens = self.placement.key_tokens(cells)
        velocity = torch.zeros_like(patch)
        active = torch.arange(len(images), device=images.device)          # images whose patch is still updated
        first_success = torch.full((len(images),), -1, dtype=torch.long, device=images.device)
        wrong = torch.zeros(len(images), dtype=torch.bool, device=images.device)   # at each image's last forward
        value_now = torch.zeros(len(images), device=images.device)          # frozen images keep their last value
        attention_now = torch.zeros(len(images), device=images.device)
        loss_curve, attention_curve = [], []        # per-iteration means, kept on the device until the end
        with self._capture() as captured:
            for t in range(self.steps + 1):
                part = patch[active].requires_grad_(True)
                value, logits = self.objective(apply_patch(images[active], part, cells[active], self.placement.token_size),
                                               labels[active], tokens[active], captured)
                value_now[active] = value.detach()
                loss_curve.append(value_now.mean())
                if captured is not None:
                    attention_now[active] = patch_attention(captured, tokens[active])
                    attention_curve.append(attention_now.mean())
                broken = logits.argmax(1) != labels[active]
                wrong[active] = broken
                first_success[active[broken & (first_success[active] < 0)]] = t    # t updates (0: the random patch)
                if t == self.steps:
                    break
                gradient, = torch.autograd.grad(value.sum(), part)
                part = part.detach()
                if self.early_stop:
                    active, part, gradient = active[~broken], part[~broken], gradient[~broken]
                    if not len(active):
                        break
                direction, velocity[active] = ascent_direction(gradient, velocity[active], self.momentum)
                patch[active] = (part + self.step_size_at(t) * direction.sign()).clamp(0, 1)
        return PatchResult(apply_patch(images, patch, cells, self.placement.token_size), patch, wrong, first_success,
                           torch.stack(loss_curve).tolist(),
                           torch.stack(attention_curve).tolist() if attention_curve else [],
                           attention_now if attention_curve else None)


def patch_attention(captured: list, tokens: torch.Tensor) -> torch.Tensor:
    """Post-softmax attention weight on the patch key, mean over layers, heads and queries: B values."""
    with torch.no_grad():
        return attention_loss(captured, tokens, "patch_fool", aggregation="mean")

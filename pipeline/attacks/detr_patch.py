"""Attention-Fool patch attack on a DETR-family detector (Lovisotto et al., CVPR 2022, seed 003 §5.3; methods.md P4).

Threat model: one square patch per image overwrites a fixed pixel box of the working-size image (paper: 64, 56 or
48 px centred at pixel (80, 80) of an 800-px image); p_0 ~ U[0, 1]; white box. The update is attacks/patch.py's
(sign-PGD with the cosine step α_t, or momentum), for N iterations (paper: 1000) without early stop: mAP has no
per-image success. Objective, maximised, summed over images:
  random the U[0, 1] start itself, never optimised: the control a patch of that size gives for free;
  ce     the no-object log-likelihood of every decoder query of the last decoder layer, mean over queries
         (DETR: −CE(·, ∅); Conditional DETR: every sigmoid class off), i.e. the output loss targeted to ∅;
  kq     L_kq^(1): every query's pre-softmax score B_{j,i*} for the patch key i* in the detector's first
         self-attention over image tokens (`Detector.attention`: DETR's first encoder layer, RT-DETR's AIFI layer;
         q = k = src + pos), mean over the image's tokens, hard max over heads;
  ce+kq  ce + λ·kq.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.attacks.attention_fool import attention_loss
from pipeline.attacks.base import frozen_eval
from pipeline.attacks.patch import apply_patch, ascent_direction, cosine_step, parse_objective
from pipeline.models.detr import Detector
from pipeline.models.hf_attention import QueryKey, captured_query_keys, key_query_scores

DETR_OBJECTIVES = ("random", "ce", "ce+kq", "kq")


def check_detr_objective(objective: str) -> str:
    if objective not in DETR_OBJECTIVES:
        raise ValueError(f"DETR objective {objective!r}: use one of {list(DETR_OBJECTIVES)}")
    return objective


def attention_to_key(layer: QueryKey, tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """B×n: each query's post-softmax attention on the key `tokens` (B long), mean over heads; padding keys are
    masked out of the softmax as DETR masks them, padding queries get 0."""
    scores = key_query_scores(layer, normalise=False)                                   # B×H×n×n
    scores = scores.masked_fill(~valid[:, None, None, :], float("-inf"))
    rows = torch.arange(len(tokens), device=tokens.device)
    weights = scores.softmax(-1)[rows, :, :, tokens].mean(1)                            # B×n
    return weights * valid


def image_mean(maps: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """B×n attention_to_key maps → B: the mean over each image's queries."""
    return maps.sum(-1) / valid.sum(-1)


@dataclass
class DetrPatchResult:
    patched: torch.Tensor            # B×3×H×W padded batch with the final patches
    patch: torch.Tensor              # B×3×s×s
    loss_curve: list[float]          # mean objective per iteration
    attention_curve: list[float]     # mean first-encoder-layer attention on the patch key per iteration
    attention_maps: torch.Tensor     # B×n: every query's attention on the patch key with the final patch
    snapshots: dict[int, torch.Tensor]   # iteration t → B×3×s×s, the patch after t updates (`snapshot_steps`)


class DetrPatchAttack:
    """The Attention-Fool detection attack; `objective` = random | ce | ce+kq | kq; the patch after t updates is kept
    for every t of `snapshot_steps` (mAP against steps)."""

    def __init__(self, detector: Detector, patch_size: int, steps: int = 1000, objective: str = "ce+kq",
                 step_size: float = 8 / 255, momentum: float | None = None, attention_weight: float = 1.0,
                 normalise: bool = True, amp: bool = False, seed: int = 0, snapshot_steps: tuple[int, ...] = ()):
        self.detector, self.patch_size = detector, patch_size
        optimised = check_detr_objective(objective) != "random"
        self.steps = steps if optimised else 0
        self.use_ce, attention = parse_objective(objective) if optimised else (False, None)
        self.use_kq = attention is not None
        self.snapshot_steps = {min(t, self.steps) for t in snapshot_steps}
        self.step_size, self.momentum, self.attention_weight = step_size, momentum, attention_weight
        self.normalise, self.amp, self.seed = normalise, amp, seed

    def objective(self, pixels: torch.Tensor, pixel_mask: torch.Tensor, tokens: torch.Tensor, valid: torch.Tensor,
                  captured: list[QueryKey]) -> torch.Tensor:
        """The per-image objective of one forward pass (fp32)."""
        with torch.autocast(pixels.device.type, dtype=torch.bfloat16, enabled=self.amp):
            logits = self.detector(pixels, pixel_mask).logits
        value = self.detector.no_object_log_likelihood(logits) if self.use_ce else logits.new_zeros(len(pixels)).float()
        if self.use_kq:
            value = value + self.attention_weight * attention_loss(captured[:1], tokens, "kq", self.normalise, "max",
                                                                   valid)
        return value

    def __call__(self, pixels: torch.Tensor, pixel_mask: torch.Tensor, corners: torch.Tensor, tokens: torch.Tensor,
                 valid: torch.Tensor, initial: torch.Tensor | None = None) -> DetrPatchResult:
        """Patches for a (padded) batch: `corners` B×2 (row, col) of each patch's top-left pixel, `tokens` B the
        encoder token under each patch, `valid` B×n the image (non-padding) tokens (Detector.token_grid); `initial`
        B×3×s×s starting patches (default: U[0, 1] from `seed`)."""
        if initial is None:
            generator = torch.Generator(device=pixels.device).manual_seed(self.seed)
            initial = torch.rand((len(pixels), 3, self.patch_size, self.patch_size), generator=generator,
                                 device=pixels.device)
        with frozen_eval(self.detector):
            return self._run(pixels, pixel_mask, corners, tokens, valid, initial.clone())

    def _run(self, pixels, pixel_mask, corners, tokens, valid, patch) -> DetrPatchResult:
        velocity = torch.zeros_like(patch)
        loss_curve, attention_curve = [], []                # per-iteration means, kept on the device until the end
        snapshots = {}
        with captured_query_keys(self.detector, [self.detector.attention]) as captured:
            for t in range(self.steps + 1):
                if t in self.snapshot_steps:
                    snapshots[t] = patch.detach().clone()
                patch.requires_grad_(t < self.steps)          # the last pass only measures the final patch
                with torch.set_grad_enabled(t < self.steps):
                    value = self.objective(apply_patch(pixels, patch, corners, 1), pixel_mask, tokens, valid, captured)
                maps = attention_to_key(captured[0], tokens, valid).detach()
                loss_curve.append(value.detach().mean())
                attention_curve.append(image_mean(maps, valid).mean())
                if t == self.steps:
                    break
                gradient, = torch.autograd.grad(value.sum(), patch)
                direction, velocity = ascent_direction(gradient, velocity, self.momentum)
                patch = (patch.detach() + cosine_step(self.step_size, t, self.steps) * direction.sign()).clamp(0, 1)
        patch = patch.detach()
        return DetrPatchResult(apply_patch(pixels, patch, corners, 1), patch, torch.stack(loss_curve).tolist(),
                               torch.stack(attention_curve).tolist(), maps, snapshots)

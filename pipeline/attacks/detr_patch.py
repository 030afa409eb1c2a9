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
One batch may mix runs (patch sides and objectives) on images of one working size: each image's objective has its
own weights on the two terms and its patch its own side, and the objective is a sum over images, so an image's
patch follows the gradient it would follow alone. The stage fills its batches this way (pipeline/evaluation/
detr_runs.py): at COCO's many working sizes, a batch of one run's images of one size would hold one or two.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.attacks.attention_fool import attention_loss
from pipeline.attacks.base import frozen_eval
from pipeline.attacks.patch import ascent_direction, cosine_step, parse_objective, paste_patch_
from pipeline.models.detr import Detector
from pipeline.models.hf_attention import QueryKey, captured_query_keys, key_query_scores

DETR_OBJECTIVES = ("random", "ce", "ce+kq", "kq")


@dataclass(frozen=True)
class DetrRun:
    """One attack run of the stage: a patch side (working-size pixels) and an objective."""

    size: int
    objective: str

    def __post_init__(self):
        if self.objective not in DETR_OBJECTIVES:
            raise ValueError(f"DETR objective {self.objective!r}: use one of {list(DETR_OBJECTIVES)}")

    @property
    def label(self) -> str:
        return f"{self.size}px_{self.objective}"

    @property
    def optimised(self) -> bool:
        return self.objective != "random"

    def term_weights(self, attention_weight: float) -> tuple[float, float]:
        """(weight of the no-object term, weight of L_kq^(1)) in this run's objective."""
        if not self.optimised:
            return 0.0, 0.0
        use_ce, attention = parse_objective(self.objective)
        return float(use_ce), attention_weight if attention is not None else 0.0


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
    patches: list[torch.Tensor]      # per image, 3×s×s with its run's side s
    values: torch.Tensor             # (steps + 1)×B: each image's objective per iteration (0: the start)
    attention: torch.Tensor          # (steps + 1)×B: each image's mean first-encoder-layer attention on its patch key
    attention_maps: torch.Tensor     # B×n: every query's attention on the patch key with the final patch
    snapshots: dict[int, list[torch.Tensor]]   # iteration t → per image, the patch after t updates


class DetrPatchAttack:
    """The Attention-Fool detection attack for N = `steps` iterations (0: the start only, the random control); the
    patch after t updates is kept for every t of `snapshot_steps` (mAP against steps)."""

    def __init__(self, detector: Detector, steps: int = 1000, step_size: float = 8 / 255,
                 momentum: float | None = None, attention_weight: float = 1.0, normalise: bool = True,
                 amp: bool = False, snapshot_steps: tuple[int, ...] = ()):
        self.detector, self.steps = detector, steps
        self.snapshot_steps = {min(t, steps) for t in snapshot_steps}
        self.step_size, self.momentum, self.attention_weight = step_size, momentum, attention_weight
        self.normalise, self.amp = normalise, amp

    def objective(self, pixels: torch.Tensor, pixel_mask: torch.Tensor, tokens: torch.Tensor, valid: torch.Tensor,
                  captured: list[QueryKey], weights: torch.Tensor) -> torch.Tensor:
        """The per-image objective of one forward pass (fp32): `weights` B×2 on (no-object, L_kq^(1)); a term no
        image weighs is not computed."""
        with torch.autocast(pixels.device.type, dtype=torch.bfloat16, enabled=self.amp):
            logits = self.detector(pixels, pixel_mask).logits
        value = logits.new_zeros(len(pixels), dtype=torch.float)
        if weights[:, 0].any():
            value = value + weights[:, 0] * self.detector.no_object_log_likelihood(logits)
        if weights[:, 1].any():
            value = value + weights[:, 1] * attention_loss(captured[:1], tokens, "kq", self.normalise, "max", valid)
        return value

    def __call__(self, pixels: torch.Tensor, pixel_mask: torch.Tensor, runs: list[DetrRun], corners: torch.Tensor,
                 tokens: torch.Tensor, valid: torch.Tensor, initial: list[torch.Tensor]) -> DetrPatchResult:
        """Patches for a (padded) batch: per image its run, `corners` B×2 (row, col) of its patch's top-left pixel,
        `tokens` B the encoder token under its patch, `valid` B×n its image (non-padding) tokens
        (Detector.token_grid) and `initial` its starting patch (3×s×s)."""
        if self.steps and not all(run.optimised for run in runs):
            raise ValueError("the random control is the start itself: attack it with steps = 0")
        weights = torch.tensor([run.term_weights(self.attention_weight) for run in runs], device=pixels.device)
        sides: dict[int, list[int]] = {}
        for i, run in enumerate(runs):
            sides.setdefault(run.size, []).append(i)
        groups = {size: torch.tensor(rows, device=pixels.device) for size, rows in sides.items()}
        patches = {size: torch.stack([initial[i] for i in sides[size]]).to(pixels.device) for size in sides}
        with frozen_eval(self.detector):
            return self._run(pixels, pixel_mask, groups, patches, corners, tokens, valid, weights)

    def _run(self, pixels, pixel_mask, groups, patches, corners, tokens, valid, weights) -> DetrPatchResult:
        velocity = {size: torch.zeros_like(p) for size, p in patches.items()}
        values, attention, snapshots = [], [], {}            # per iteration, kept on the device until the end
        with captured_query_keys(self.detector, [self.detector.attention]) as captured:
            for t in range(self.steps + 1):
                if t in self.snapshot_steps:
                    snapshots[t] = ungrouped(groups, {size: p.detach().clone() for size, p in patches.items()})
                for patch in patches.values():
                    patch.requires_grad_(t < self.steps)      # the last pass only measures the final patches
                with torch.set_grad_enabled(t < self.steps):
                    patched = pixels.clone()                      # one copy; each side's patches written into it
                    for size, rows in groups.items():
                        paste_patch_(patched, patches[size], corners[rows], 1, rows)
                    value = self.objective(patched, pixel_mask, tokens, valid, captured, weights)
                maps = attention_to_key(captured[0], tokens, valid).detach()
                values.append(value.detach())
                attention.append(image_mean(maps, valid))
                if t == self.steps:
                    break
                gradients = torch.autograd.grad(value.sum(), list(patches.values()))
                step = cosine_step(self.step_size, t, self.steps)
                for (size, patch), gradient in zip(list(patches.items()), gradients):
                    direction, velocity[size] = ascent_direction(gradient, velocity[size], self.momentum)
                    patches[size] = (patch.detach() + step * direction.sign()).clamp(0, 1)
        final = ungrouped(groups, {size: p.detach() for size, p in patches.items()})
        return DetrPatchResult(final, torch.stack(values), torch.stack(attention), maps, snapshots)


def ungrouped(groups: dict[int, torch.Tensor], patches: dict[int, torch.Tensor]) -> list[torch.Tensor]:
    """Per-side patch tensors back in batch order."""
    ordered: list = [None] * sum(len(rows) for rows in groups.values())
    for size, rows in groups.items():
        for row, patch in zip(rows.tolist(), patches[size]):
            ordered[row] = patch
    return ordered

"""The threat model every attack shares (torchattacks / MadryLab robustness style; methods.md conventions).

An attack works in [0, 1] pixel space on a model that normalises internally. While it runs, the model is
in `eval()` (frozen BatchNorm) with its parameters frozen; both are restored afterwards. Samples the model
already misclassifies are skipped (they count as broken, with δ = 0). Whatever a subclass produces is
projected onto the threat model before it is returned: ||δ||_p ≤ ε, x + δ ∈ [0, 1], and δ = 0 wherever
the optional perturbation mask is 0.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Literal

import torch
from torch import nn

from pipeline.attacks.attention import AttentionTerm, CleanAttention, attention_distance, clean_attention
from pipeline.attacks.losses import margin
from pipeline.models.forward import model_logits

Norm = Literal["linf", "l2"]


@dataclass
class AttackResult:
    """Adversarial images (B×C×H×W in [0, 1]) and per-sample success (the model's label differs from y).

    `first_success` (attacks that stop early, one restart): B long, the steps taken before the first
    misclassified iterate (0: the clean image or the random start), −1 where the attack failed; None otherwise.
    """

    adversarial: torch.Tensor
    success: torch.Tensor
    first_success: torch.Tensor | None = None


@contextmanager
def frozen_eval(model: nn.Module) -> Iterator[None]:
    """`model.eval()` with `requires_grad=False` parameters; every module's mode and flag restored on exit."""
    modes = [module.training for module in model.modules()]
    flags = [param.requires_grad for param in model.parameters()]
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    try:
        yield
    finally:
        for module, mode in zip(model.modules(), modes):
            module.training = mode
        for param, flag in zip(model.parameters(), flags):
            param.requires_grad_(flag)


def project(adversarial: torch.Tensor, images: torch.Tensor, eps: float, norm: Norm,
            perturb_mask: torch.Tensor | None) -> torch.Tensor:
    """The closest point of the threat model: δ clipped to the ε-ball, zeroed off the mask, x + δ in [0, 1]."""
    delta = adversarial - images
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
        delta = delta * (eps / norms).clamp(max=1.0).view(-1, *[1] * (delta.dim() - 1))
    if perturb_mask is not None:
        delta = delta * perturb_mask
    return (images + delta).clamp(0.0, 1.0)


class Attack:
    """Base class: subclasses implement `run(x, y, model_mask, perturb_mask)` on the samples to attack.

    `model_mask` is passed to the model's forward (`model(x, mask)`, the masked classifiers of methods.md
    P1); `perturb_mask` restricts δ. `restarts` > 1 repeats `run` on the samples not yet broken and keeps
    each sample's worst case (largest Carlini–Wagner margin). `a3` adds A3Attack's attention term
    (attention.py) to attacks that support it (PGD, CW, Step-LL). `amp` runs the forward pass under bf16
    autocast; losses are always computed in fp32. Random starts come from a generator seeded with `seed`
    at every call (reproducible evaluation), or from torch's global RNG when `seed` is None; a call with
    `start_noise` (training: per-sample N(0, 1) draws seeded by sample and epoch, pipeline/data/dataset.py) takes
    its random start from those draws instead, so every data-parallel rank starts each sample where one process does.
    """

    norm: Norm = "linf"
    stops_early = False     # a sample leaves the run at its first misclassified iterate (see `run`)

    def __init__(self, model: nn.Module, eps: float, *, restarts: int = 1, amp: bool = False,
                 skip_misclassified: bool = True, seed: int | None = 0, a3: AttentionTerm | None = None):
        if eps < 0:
            raise ValueError(f"eps must be ≥ 0, got {eps}")
        if restarts < 1:
            raise ValueError(f"restarts must be ≥ 1, got {restarts}")
        self.model, self.eps, self.restarts, self.amp = model, float(eps), restarts, amp
        self.skip_misclassified, self.seed, self.a3 = skip_misclassified, seed, a3
        self.generator: torch.Generator | None = None
        self.start_noise: torch.Tensor | None = None      # the attacked samples' N(0, 1) start draws, if given
        self.clean: CleanAttention | None = None

    # ------------------------------------------------------------------ model access for subclasses
    def logits(self, images: torch.Tensor, model_mask: torch.Tensor | None) -> torch.Tensor:
        """fp32 logits of the model, the forward pass under bf16 autocast when `amp` is on."""
        return model_logits(self.model, images, model_mask, self.amp)

    def begin(self, images: torch.Tensor, labels: torch.Tensor, model_mask: torch.Tensor | None) -> None:
        """Called by `run` on the samples it attacks: with A3, fix Att_0 of the clean images (true labels)."""
        if self.a3 is not None:
            self.clean = clean_attention(self.model, images, labels, model_mask, self.a3, self.amp)

    def input_gradient(self, images: torch.Tensor, labels: torch.Tensor, model_mask: torch.Tensor | None,
                       loss_fn, ascend: bool = True, rows: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(∇_x Σ loss, per-sample loss, logits) at `images`; the loss is `loss_fn(logits, labels)`.

        With A3 the loss gains ±σ·||Att_0 − g(x)||₁, signed so that the step (ascent if `ascend`, else
        descent) moves attention away from Att_0; `rows` picks the attacked samples' Att_0 rows.
        """
        images = images.detach().requires_grad_(True)
        if self.a3 is None:
            logits = self.logits(images, model_mask)
            loss = loss_fn(logits, labels)
        else:
            if self.clean is None:
                raise ValueError(f"{type(self).__name__} does not support the A3 attention term (PGD, CW, Step-LL do)")
            distance, logits = attention_distance(self.model, images, model_mask, self.a3, self.clean.rows(rows), self.amp)
            loss = loss_fn(logits, labels) + (1 if ascend else -1) * self.a3.sigma * distance
        (grad,) = torch.autograd.grad(loss.sum(), images)
        return grad, loss.detach(), logits.detach()

    def project(self, adversarial: torch.Tensor, images: torch.Tensor, perturb_mask: torch.Tensor | None) -> torch.Tensor:
        return project(adversarial, images, self.eps, self.norm, perturb_mask)

    def rand(self, *shape: int, device: torch.device) -> torch.Tensor:
        """U[0, 1) noise from this attack's own seeded generator (reproducible across calls and runs)."""
        return torch.rand(*shape, generator=self.generator, device=device)

    # ------------------------------------------------------------------ the public call
    def run(self, images: torch.Tensor, labels: torch.Tensor, model_mask: torch.Tensor | None,
            perturb_mask: torch.Tensor | None) -> torch.Tensor:
        """The adversarial images of the samples to attack. An attack with `stops_early` also sets
        `self.stopped_at`: per sample, the step its iterate was frozen at, or its number of steps if never."""
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, labels: torch.Tensor, *, model_mask: torch.Tensor | None = None,
                 perturb_mask: torch.Tensor | None = None, start_noise: torch.Tensor | None = None) -> AttackResult:
        _check_inputs(images, labels, model_mask, perturb_mask)
        if start_noise is not None and (start_noise.shape != images.shape or self.restarts > 1):
            raise ValueError(f"start_noise must match the images {tuple(images.shape)} and serves one restart; got "
                             f"{tuple(start_noise.shape)} with {self.restarts} restarts")
        self.generator = None if self.seed is None else torch.Generator(images.device).manual_seed(self.seed)
        reads_steps = self.stops_early and self.restarts == 1
        stopped_at = torch.zeros_like(labels, dtype=torch.long) if reads_steps else None   # clean mistakes: 0
        with frozen_eval(self.model):
            adversarial = images.clone()
            todo = torch.ones_like(labels, dtype=torch.bool)
            worst_margin = None
            if self.skip_misclassified or self.restarts > 1:
                worst_margin = margin(self.logits(images, model_mask), labels)
                if self.skip_misclassified:
                    todo = worst_margin <= 0
            for _ in range(self.restarts):
                if not todo.any():
                    break
                index = todo.nonzero()[:, 0]
                self.start_noise = take(start_noise, index)
                with torch.enable_grad():
                    found = self.run(images[index], labels[index], take(model_mask, index), take(perturb_mask, index))
                found = self.project(found, images[index], take(perturb_mask, index))
                if self.restarts == 1:
                    adversarial[index] = found
                    if stopped_at is not None:
                        stopped_at[index] = self.stopped_at
                    break
                found_margin = margin(self.logits(found, take(model_mask, index)), labels[index])
                better = found_margin > worst_margin[index]
                adversarial[index[better]] = found[better]
                worst_margin[index[better]] = found_margin[better]
                todo = worst_margin <= 0
            success = self.logits(adversarial, model_mask).argmax(1) != labels
        first_success = None if stopped_at is None else torch.where(success, stopped_at, -1)
        return AttackResult(adversarial, success, first_success)


def take(tensor: torch.Tensor | None, index: torch.Tensor) -> torch.Tensor | None:
    return None if tensor is None else tensor[index]


def _check_inputs(images: torch.Tensor, labels: torch.Tensor, model_mask: torch.Tensor | None,
                  perturb_mask: torch.Tensor | None) -> None:
    if images.dim() != 4 or labels.shape != images.shape[:1]:
        raise ValueError(f"expected images B×C×H×W and labels B, got {tuple(images.shape)} and {tuple(labels.shape)}")
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError("images must lie in [0, 1] (normalisation belongs inside the model)")
    for name, mask in (("model_mask", model_mask), ("perturb_mask", perturb_mask)):
        if mask is not None and (mask.shape[0] != images.shape[0] or mask.shape[-2:] != images.shape[-2:]):
            raise ValueError(f"{name} must be B×1×H×W matching the images, got {tuple(mask.shape)}")

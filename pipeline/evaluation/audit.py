"""Gradient-masking audit (methods.md, last section; the checks of Croce & Hein 2020 / Carlini et al. 2019).

Each check returns its number and pass/fail against a threshold from params. Shares are decided on image counts
(3 of 100 images against a limit of 0.03 passes), never on float32 accuracies:
- zero gradients: share of correctly classified samples whose input gradient of the CE is exactly 0;
- PGD-20 vs PGD-100: accuracy gap (a large gap means the 20-step attack was not converged);
- black box beats white box: samples that Square breaks but no white-box attack of the suite does;
- large ε: accuracy under PGD at a huge ε must reach (about) 0;
- randomised forward: the largest logit change between two identical eval-mode forward passes.
"""

from __future__ import annotations

import torch

from pipeline.attacks.base import frozen_eval
from pipeline.attacks.losses import cross_entropy
from pipeline.config import Audit, SuiteEntry
from pipeline.evaluation.suite import SuiteRunner
from pipeline.models.forward import model_logits

AUDIT_PGD_STEPS = (20, 100)          # the converged-attack check: PGD-20 against PGD-100


def check(value: float, limit: float) -> dict:
    return {"value": float(value), "limit": float(limit), "pass": bool(value <= limit)}


def share_check(count: int, total: int, limit: float) -> dict:
    """`count` of `total` images against a limit on their share: passes while count ≤ limit · total."""
    share = count / total if total else 0.0
    return {"value": share, "count": int(count), "images": int(total), "limit": float(limit),
            "pass": bool(count <= limit * total + 1e-9)}


def zero_gradient_count(runner: SuiteRunner) -> tuple[int, int]:
    e = runner.evaluation
    zero = []
    with frozen_eval(e.model):
        for images, mask, labels in e.samples.batches(e.batch_size, e.device, e.mask_mode):
            images = images.requires_grad_(True)
            loss = cross_entropy(model_logits(e.model, images, mask, e.amp), labels)
            (grad,) = torch.autograd.grad(loss.sum(), images)
            zero.append((grad.flatten(1).abs().amax(1) == 0).cpu())
    zero_flags = torch.cat(zero)[runner.clean_correct]
    return int(zero_flags.sum()), len(zero_flags)


@torch.no_grad()
def forward_change(runner: SuiteRunner) -> float:
    e = runner.evaluation
    images, mask, _ = next(e.samples.batches(e.batch_size, e.device, e.mask_mode))
    with frozen_eval(e.model):
        first, second = (model_logits(e.model, images, mask, e.amp) for _ in range(2))
    return (first - second).abs().max().item()


def run_audit(runner: SuiteRunner, cfg: Audit, eps: float, white_box: torch.Tensor, square: SuiteEntry) -> dict:
    """All five checks at the suite's first ε; `white_box` = per-sample success of any white-box attack there."""
    pgd20, pgd100 = (runner.success(SuiteEntry(attack="pgd", steps=steps), eps) for steps in AUDIT_PGD_STEPS)
    blackbox_only = runner.success(square, eps) & ~white_box
    large = runner.success(SuiteEntry(attack="pgd", steps=AUDIT_PGD_STEPS[0]), cfg.large_eps_255 / 255)
    total = len(white_box)
    checks = {
        "zero_gradient_share": share_check(*zero_gradient_count(runner), cfg.max_zero_gradient_share),
        "pgd20_pgd100_gap": share_check(int(pgd100.sum()) - int(pgd20.sum()), total, cfg.max_pgd20_pgd100_gap),
        "blackbox_wins": check(int(blackbox_only.sum()), cfg.max_blackbox_wins),
        "large_eps_accuracy": share_check(total - int(large.sum()), total, cfg.max_large_eps_accuracy),
        "forward_change": check(forward_change(runner), cfg.max_forward_change),
    }
    return {"passed": all(c["pass"] for c in checks.values()), **checks}

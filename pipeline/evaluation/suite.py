"""Running attack suites: one attack spec at one ε over a sample set, memoised so curves and the audit reuse runs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pipeline.attacks.attention import AttentionTerm
from pipeline.attacks.base import Attack
from pipeline.attacks.registry import build_attack
from pipeline.config import SuiteEntry
from pipeline.data.dataset import SampleTensors
from pipeline.evaluation.accuracy import correct_flags, success_flags
from pipeline.evaluation.intervals import wilson_interval

ITERATIVE = ("pgd", "cw", "step_ll", "apgd_ce", "apgd_dlr")


@dataclass(frozen=True)
class Evaluation:
    """What every run shares: the model (as evaluated), its mask mode, the samples and run settings."""

    model: nn.Module
    mask_mode: str
    samples: SampleTensors
    batch_size: int
    device: torch.device
    step_ratio: float       # step size = step_ratio · ε for PGD, CW and iterative Step-LL
    amp: bool
    seed: int


def make_attack(evaluation: Evaluation, spec: SuiteEntry, eps: float) -> Attack:
    """The attack a suite entry describes at budget `eps` (evaluation: skips clean mistakes, stops early)."""
    options: dict = {"restarts": spec.restarts, "amp": evaluation.amp, "seed": evaluation.seed}
    if spec.attack in ITERATIVE and spec.steps is not None:
        options["steps"] = spec.steps
    if spec.attack in ("pgd", "cw", "step_ll") and (spec.steps or 1) > 1:
        options["step_size"] = evaluation.step_ratio * eps
    if spec.attack in ("pgd", "cw"):
        options.update(early_stop=True, **({"norm": spec.norm} if spec.attack == "pgd" else {}))
    if spec.attack == "square" and spec.queries is not None:
        options["queries"] = spec.queries
    if spec.a3_sigma is not None:
        options["a3"] = AttentionTerm(spec.a3_sigma)
    return build_attack(spec.attack, evaluation.model, eps, **options)


def eps_label(norm: str, eps: float) -> str:
    """Metric group names that read well in `dvc exp show`: eps_8_255 (L∞, in 1/255) or l2_eps_0p5."""
    if norm == "l2":
        return f"l2_eps_{eps:g}".replace(".", "p")
    return f"eps_{eps * 255:g}_255".replace(".", "p")


def accuracy_summary(correct: torch.Tensor) -> dict:
    """Accuracy of per-sample correctness flags with its 95% Wilson interval."""
    n, hits = len(correct), int(correct.sum())
    low, high = wilson_interval(hits, n)
    return {"accuracy": hits / n if n else 0.0, "ci95_low": low, "ci95_high": high, "n": n}


class SuiteRunner:
    """Per-sample success flags for (spec, ε), each computed once."""

    def __init__(self, evaluation: Evaluation):
        self.evaluation = evaluation
        self.clean_correct = correct_flags(evaluation.model, evaluation.samples, evaluation.batch_size,
                                           evaluation.device, evaluation.mask_mode, evaluation.amp)
        self._flags: dict[tuple, torch.Tensor] = {}

    def success(self, spec: SuiteEntry, eps: float, label: str | None = None) -> torch.Tensor:
        key = (spec.model_dump_json(exclude={"eps"}), round(eps, 10))
        if key not in self._flags:
            e = self.evaluation
            attack = make_attack(e, spec, eps)
            self._flags[key] = success_flags(attack, e.samples, e.batch_size, e.device, e.mask_mode,
                                             desc=label or f"{spec.attack} ε={eps:.4f}")
        return self._flags[key]

"""Running attack suites: one attack spec at one ε over a sample set, memoised so curves and the audit reuse runs
(and PGD-k / CW-k read off one longest run)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from pipeline.attacks.attention import AttentionTerm
from pipeline.attacks.base import Attack
from pipeline.attacks.registry import build_attack
from pipeline.config import SuiteEntry
from pipeline.data.dataset import SampleTensors
from pipeline.evaluation.accuracy import attack_outcomes, correct_flags, success_flags
from pipeline.evaluation.intervals import wilson_interval
from pipeline.io.run_store import RunStore

ITERATIVE = ("pgd", "cw", "step_ll", "apgd_ce", "apgd_dlr")


@dataclass
class RunFlags:
    """One attack run's per-sample result: success flags, or the step of first success (−1: never)."""

    flags: torch.Tensor


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


def prefix_family(spec: SuiteEntry, eps: float) -> tuple | None:
    """The key under which PGD-k / CW-k runs share one longest run (early stop, one restart, k > 1: the step
    size is step_ratio · ε for every k), or None for attacks that cannot be read off a longer run."""
    if spec.attack not in ("pgd", "cw") or spec.restarts != 1 or (spec.steps or 1) == 1:
        return None
    return spec.model_dump_json(exclude={"eps", "steps"}), round(eps, 10)


class SuiteRunner:
    """Per-sample success flags for (spec, ε), each computed once.

    PGD-k and CW-k are read off the longest run of the same attack at that ε among the `planned` ones: the start
    comes from the same seeded generator and the step size does not depend on k, so the first k steps of the
    longest run are PGD-k's run, and early stop freezes a sample at its first misclassified iterate. PGD-k
    succeeds exactly where the longest run first succeeds within k steps (PGD-10/20/40/100 cost one PGD-100).
    """

    def __init__(self, evaluation: Evaluation, planned: Iterable[tuple[SuiteEntry, float]] = (),
                 store: RunStore | None = None):
        self.evaluation, self.store = evaluation, store
        self.clean_correct = correct_flags(evaluation.model, evaluation.samples, evaluation.batch_size,
                                           evaluation.device, evaluation.mask_mode, evaluation.amp)
        self._flags: dict[tuple, torch.Tensor] = {}
        self._horizons: dict[tuple, int] = {}
        for spec, eps in planned:
            if (family := prefix_family(spec, eps)) is not None:
                self._horizons[family] = max(self._horizons.get(family, 0), spec.steps)
        self._first_success: dict[tuple, tuple[int, torch.Tensor]] = {}     # family -> (steps run, steps to success)

    def run_key(self, spec: SuiteEntry, eps: float) -> str:
        """The name of the attack run that answers (spec, ε) (its key in the run store): PGD-k and CW-k share their
        family's longest planned run."""
        if (family := prefix_family(spec, eps)) is not None:
            return f"first success {family} {max(spec.steps, self._horizons.get(family, 0))}"
        return f"flags {(spec.model_dump_json(exclude={'eps'}), round(eps, 10))}"

    def success(self, spec: SuiteEntry, eps: float, label: str | None = None) -> torch.Tensor:
        family, desc = prefix_family(spec, eps), label or f"{spec.attack} ε={eps:.4f}"
        if family is not None:
            return self._prefix_success(family, spec, eps, desc)
        key = self.run_key(spec, eps)
        if key not in self._flags:
            e = self.evaluation
            self._flags[key] = self._stored(key, lambda: RunFlags(success_flags(
                make_attack(e, spec, eps), e.samples, e.batch_size, e.device, e.mask_mode, desc))).flags
        return self._flags[key]

    def _stored(self, key: str, compute) -> RunFlags:
        """`compute()`, or its result stored by an interrupted earlier run of the stage (the store's fingerprint
        covers everything a run depends on; each attack seeds its own generator, so the order does not matter)."""
        return compute() if self.store is None else self.store.computed(key, RunFlags, torch.device("cpu"), compute)

    def _prefix_success(self, family: tuple, spec: SuiteEntry, eps: float, desc: str) -> torch.Tensor:
        steps_run, first_success = self._first_success.get(family, (0, None))
        if steps_run < spec.steps:
            e = self.evaluation
            steps_run = max(spec.steps, self._horizons.get(family, 0))
            longest = spec.model_copy(update={"steps": steps_run})
            first_success = self._stored(self.run_key(longest, eps), lambda: RunFlags(attack_outcomes(
                make_attack(e, longest, eps), e.samples, e.batch_size, e.device, e.mask_mode,
                f"{desc} (run for {steps_run} steps)")[1])).flags
            self._first_success[family] = steps_run, first_success
        return (first_success >= 0) & (first_success <= spec.steps)

"""Attacks by name, so that suites in params.yaml can list them."""

from __future__ import annotations

from typing import Any

from torch import nn

from pipeline.attacks.apgd import APGD
from pipeline.attacks.base import Attack
from pipeline.attacks.cw import CW
from pipeline.attacks.fgsm import FGSM
from pipeline.attacks.pgd import PGD
from pipeline.attacks.square import Square
from pipeline.attacks.step_ll import StepLL

ATTACKS: dict[str, Any] = {
    "fgsm": FGSM,
    "pgd": PGD,
    "cw": CW,
    "step_ll": StepLL,
    "apgd_ce": lambda model, eps, **kw: APGD(model, eps, loss="ce", **kw),
    "apgd_dlr": lambda model, eps, **kw: APGD(model, eps, loss="dlr", **kw),
    "square": Square,
}


def build_attack(name: str, model: nn.Module, eps: float, **options: Any) -> Attack:
    """The attack `name` (a key of ATTACKS) on `model` at budget `eps`; `options` go to its constructor."""
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; known: {sorted(ATTACKS)}")
    return ATTACKS[name](model, eps, **options)

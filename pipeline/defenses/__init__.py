"""Training recipes, one per file: a module `pipeline/defenses/<name>.py` with `build(model, settings)`
and, if it takes options, a pydantic `Options` model for the classifier entry's `options:` mapping.

Adding a recipe is adding that file; `recipe: <name>` in a classifier entry then selects it.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from pydantic import BaseModel


@dataclass(frozen=True)
class RecipeSettings:
    """What a recipe may use: the L∞ adversary (ε, step, steps), the bf16-forward switch and its own
    options (the classifier entry's `options:`, validated by the recipe's `Options` model)."""

    eps: float
    step_size: float
    steps: int
    amp: bool = False
    options: dict = field(default_factory=dict)


@dataclass
class StepOutput:
    """A training step's scalar loss (to backpropagate) and the logits of the examples it trained on."""

    loss: torch.Tensor
    logits: torch.Tensor
    labels: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)   # the loss's parts, logged per epoch


TrainingStep = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None", torch.Tensor], StepOutput]
"""step(images, labels, model mask or None, start noise) → StepOutput: the start noise is each sample's N(0, 1)
draw for a training attack's random start (pipeline/data/dataset.py), ignored by recipes without one."""


def recipe_names() -> list[str]:
    return sorted(module.name for module in pkgutil.iter_modules(__path__) if not module.name.startswith("_"))


def _module(name: str):
    if name not in recipe_names():
        raise ValueError(f"unknown recipe {name!r}; known: {recipe_names()}")
    return importlib.import_module(f"{__name__}.{name}")


def recipe_options(name: str) -> type[BaseModel] | None:
    """The recipe's `Options` model (its keys under `options:` in a classifier entry), None if it has none."""
    return getattr(_module(name), "Options", None)


def build_recipe(name: str, model: torch.nn.Module, settings: RecipeSettings) -> TrainingStep:
    """The training step of recipe `name` (a TrainingStep), model in train mode."""
    return _module(name).build(model, settings)

"""Training recipes, one per file: a module `pipeline/defenses/<name>.py` with `build(model, settings)`.

Adding a recipe is adding that file; `recipe: <name>` in a classifier entry then selects it.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RecipeSettings:
    """What a recipe may use: the L∞ adversary (ε, step, steps) and the bf16-forward switch."""

    eps: float
    step_size: float
    steps: int
    amp: bool = False


@dataclass
class StepOutput:
    """A training step's scalar loss (to backpropagate) and the logits of the examples it trained on."""

    loss: torch.Tensor
    logits: torch.Tensor
    labels: torch.Tensor


TrainingStep = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], StepOutput]


def recipe_names() -> list[str]:
    return sorted(module.name for module in pkgutil.iter_modules(__path__) if not module.name.startswith("_"))


def build_recipe(name: str, model: torch.nn.Module, settings: RecipeSettings) -> TrainingStep:
    """The training step of recipe `name`: step(images, labels, model_mask) → StepOutput, model in train mode."""
    if name not in recipe_names():
        raise ValueError(f"unknown recipe {name!r}; known: {recipe_names()}")
    return importlib.import_module(f"{__name__}.{name}").build(model, settings)

"""Classifier checkpoints: model.safetensors + config.json (enough to rebuild it), written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from pipeline.errors import InputError
from pipeline.io.atomic import atomic_path, write_json
from pipeline.models.registry import build_classifier

WEIGHTS, CONFIG = "model.safetensors", "config.json"


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    with atomic_path(path) as tmp:
        save_file({name: t.detach().cpu().contiguous() for name, t in tensors.items()}, str(tmp))


def save_classifier(folder: Path, model: nn.Module, config: dict) -> None:
    save_tensors(Path(folder) / WEIGHTS, model.state_dict())
    write_json(Path(folder) / CONFIG, config)


def load_classifier(folder: Path, device: torch.device | str = "cpu", weights: Path | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the classifier from config.json and load its weights (no pickle); returns it in eval mode.

    `weights` loads another safetensors file of the same model instead (e.g. a checkpoints/ epoch).
    """
    folder = Path(folder)
    weights = folder / WEIGHTS if weights is None else Path(weights)
    try:
        config = json.loads((folder / CONFIG).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{folder / CONFIG}: cannot read the classifier config ({exc})") from None
    model = build_classifier(config)
    try:
        model.load_state_dict(load_file(str(weights), device=str(device)))
    except RuntimeError as exc:
        raise InputError(f"{weights}: does not match config.json ({str(exc).splitlines()[0]})") from None
    return model.to(device).eval(), config

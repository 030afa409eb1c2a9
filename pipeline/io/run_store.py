"""Finished units of a long stage kept on disk, so that an interrupted `dvc repro` resumes where it stopped
(issue 20 §4): each unit (one attack run) is a dataclass saved as its tensors (safetensors) and its other fields
(JSON) under its key. The store belongs to one fingerprint of everything the units depend on (code, params, model,
images): a store of another fingerprint is emptied. Units are seeded independently of the order they run in, so a
resumed stage writes the same outputs as an uninterrupted one (tested per stage). The folder is a side folder of
the stage's output folder, ignored by DVC and git (.dvcignore, .gitignore), removed when the stage finishes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors.torch import load_file, save_file

from pipeline.io.atomic import atomic_path, write_json

FINGERPRINT = "fingerprint.txt"
Unit = TypeVar("Unit")


def _split(value: Any, name: str, tensors: dict[str, torch.Tensor]) -> Any:
    """The JSON stand-in of one field, its tensors moved into `tensors` under names derived from `name`."""
    if isinstance(value, torch.Tensor):
        tensors[name] = value
        return {"tensor": name, "on_device": value.device.type != "cpu"}
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, torch.Tensor) for v in value):
        return {"tensors": [_split(v, f"{name}/{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, dict) and value and all(isinstance(v, torch.Tensor) for v in value.values()):
        return {"tensor_dict": {str(k): _split(v, f"{name}/{k}", tensors) for k, v in value.items()}}
    return {"value": list(value) if isinstance(value, tuple) else value}


def _join(stand_in: dict, tensors: dict[str, torch.Tensor], device: torch.device) -> Any:
    if "tensor" in stand_in:              # back where it was: the accelerator, or the CPU
        return tensors[stand_in["tensor"]].to(device if stand_in["on_device"] else "cpu")
    if "tensors" in stand_in:
        return [_join(item, tensors, device) for item in stand_in["tensors"]]
    if "tensor_dict" in stand_in:
        return {int(k): _join(item, tensors, device) for k, item in stand_in["tensor_dict"].items()}
    return stand_in["value"]


class RunStore:
    def __init__(self, folder: Path, fingerprint: str):
        self.folder = Path(folder)
        marker = self.folder / FINGERPRINT
        if not marker.exists() or marker.read_text() != fingerprint:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir(parents=True)
            marker.write_text(fingerprint)

    def _stem(self, key: str) -> Path:
        return self.folder / hashlib.sha256(key.encode()).hexdigest()[:24]

    def done(self) -> int:
        return len(list(self.folder.glob("*.json")))

    def save(self, key: str, unit: Any) -> None:
        """The unit's tensors first, its JSON last: a unit counts as finished only once both are whole. Each tensor
        is saved as its own copy (fields may be views of one another, which safetensors refuses)."""
        tensors: dict[str, torch.Tensor] = {}
        fields = {f.name: _split(getattr(unit, f.name), f.name, tensors) for f in dataclasses.fields(unit)}
        with atomic_path(self._stem(key).with_suffix(".safetensors")) as tmp:
            save_file({name: t.detach().cpu().clone(memory_format=torch.contiguous_format)
                       for name, t in tensors.items()}, str(tmp))
        write_json(self._stem(key).with_suffix(".json"), {"key": key, "fields": fields})

    def load(self, key: str, kind: type[Unit], device: torch.device) -> Unit | None:
        """The saved unit of `key` (its tensors on `device` where they were on an accelerator, else on the CPU);
        None if it has not finished."""
        stem = self._stem(key)
        if not stem.with_suffix(".json").exists():
            return None
        record = json.loads(stem.with_suffix(".json").read_text())
        tensors = load_file(str(stem.with_suffix(".safetensors")))
        return kind(**{name: _join(stand_in, tensors, device) for name, stand_in in record["fields"].items()})

    def computed(self, key: str, kind: type[Unit], device: torch.device, compute: Callable[[], Unit]) -> Unit:
        """The unit of `key` saved by an earlier (interrupted) run of the stage, else `compute()`, saved before it is
        returned: every resumable stage reaches its units through this one path."""
        unit = self.load(key, kind, device)
        if unit is None:
            unit = compute()
            self.save(key, unit)
        return unit

    def remove(self) -> None:
        """The stage finished: its outputs hold every unit."""
        shutil.rmtree(self.folder, ignore_errors=True)

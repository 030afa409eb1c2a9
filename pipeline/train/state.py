"""Epoch-level resume state: weights and optimiser tensors in safetensors, the rest in JSON.

A state is only resumed when its fingerprint (a hash of everything that determines training: params,
data and the library's code) matches, so a changed entry, dataset or training code starts over instead
of continuing, or reusing the finished weights of, a different experiment.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from pipeline.io.atomic import write_json
from pipeline.models.checkpoint import save_tensors

STATE = "state.json"
SNAPSHOTS = "snapshots"


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch (torch, shuffling, augmentation): a resumed run replays the epochs it did not finish."""
    return seed * 100_003 + epoch


def fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def library_digest() -> str:
    """A hash of every pipeline module this process has loaded (the code that trains, its recipe included once
    built): a state saved by other training code is never resumed, and unrelated modules do not matter."""
    root = Path(__file__).resolve().parents[1]
    loaded = {Path(m.__file__).resolve() for m in list(sys.modules.values()) if getattr(m, "__file__", None)}
    digest = hashlib.sha256()
    for path in sorted(p for p in loaded if p.is_relative_to(root)):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@dataclass
class ResumeState:
    epoch: int                 # epochs completed
    history: list[dict]        # per-epoch metrics logged so far
    fingerprint: str


def save_state(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: ResumeState) -> None:
    """Tensors first, then the JSON that makes them valid: a crash in between leaves the previous epoch's JSON."""
    tensors = {f"model.{name}": t for name, t in model.state_dict().items()}
    for index, slots in optimizer.state_dict()["state"].items():
        tensors.update({f"optim.{index}.{slot}": torch.as_tensor(value) for slot, value in slots.items()
                        if value is not None})
    name = f"state-epoch{state.epoch}.safetensors"
    save_tensors(Path(folder) / name, tensors)
    write_json(Path(folder) / STATE, {"epoch": state.epoch, "history": state.history, "fingerprint": state.fingerprint,
                                      "tensors": name})
    for old in Path(folder).glob("state-epoch*.safetensors"):
        if old.name != name:
            old.unlink()


def load_state(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer, expected: str) -> ResumeState | None:
    """Restore model and optimiser from `folder` if it holds a state with fingerprint `expected`."""
    path = Path(folder) / STATE
    if not path.exists():
        return None
    try:
        meta = json.loads(path.read_text())
        tensors = load_file(str(Path(folder) / meta["tensors"]))
    except (OSError, ValueError, KeyError):
        return None
    if meta.get("fingerprint") != expected:
        return None
    model.load_state_dict({name[6:]: t for name, t in tensors.items() if name.startswith("model.")})
    optim_state = optimizer.state_dict()
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, slot = key.split(".", 2)
            optim_state["state"].setdefault(int(index), {})[slot] = value
    optimizer.load_state_dict(optim_state)
    return ResumeState(meta["epoch"], meta["history"], meta["fingerprint"])


def clear_snapshots(folder: Path) -> None:
    """Forget the snapshots of an earlier run (a fresh start must not mix them with its own)."""
    shutil.rmtree(Path(folder) / SNAPSHOTS, ignore_errors=True)


def save_snapshot(folder: Path, model: nn.Module, epoch: int) -> None:
    """The weights after `epoch` (1-based) as `snapshots/epoch_NNN.safetensors`, for figures across training."""
    save_tensors(Path(folder) / SNAPSHOTS / f"epoch_{epoch:03d}.safetensors", model.state_dict())

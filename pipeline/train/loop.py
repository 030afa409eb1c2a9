"""The training loop: seeded epochs, per-iteration learning rate, per-epoch evaluation and resume state.

Every epoch reseeds torch, the shuffling and the augmentation from (seed, epoch), so a run resumed from
an epoch checkpoint produces the same weights as an uninterrupted one (on the same device).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from pipeline.attacks.pgd import PGD
from pipeline.config import Optimiser
from pipeline.data.dataset import PreparedDataset, SampleTensors, model_mask
from pipeline.defenses import TrainingStep
from pipeline.evaluation.accuracy import accuracy, robust_accuracy
from pipeline.train import shared_warmup
from pipeline.train.optim import build_optimizer, learning_rate, set_learning_rate
from pipeline.train.state import ResumeState, clear_snapshots, epoch_seed, load_state, save_snapshot, save_state

log = logging.getLogger(__name__)
EVAL_BATCH = 256          # the per-epoch validation runs in eval mode, so its batch size changes no result, only speed


@dataclass(frozen=True)
class FitSettings:
    epochs: int
    batch_size: int
    optimiser: Optimiser
    seed: int
    mask_mode: str                       # none | foreground | random
    eval_eps: float                      # the per-epoch PGD curve on the validation subset
    eval_step_size: float
    eval_steps: int
    warmup_epochs: int = 0               # epochs that use `warmup_step` instead of the recipe's step
    snapshot_every: int = 0              # keep the weights of every n-th epoch (0: only the last)
    eval_name: str = "val"               # the evaluated split in the metric names: val, or holdout (tuning)


def phase_progress(settings: FitSettings, epoch: float) -> float:
    """Progress ∈ [0, 1) through the current phase (warm-up, then the recipe): each runs its own schedule."""
    if epoch < settings.warmup_epochs:
        return epoch / settings.warmup_epochs
    return (epoch - settings.warmup_epochs) / (settings.epochs - settings.warmup_epochs)


def train_epoch(model: nn.Module, step: TrainingStep, loader: DataLoader, optimizer: torch.optim.Optimizer,
                settings: FitSettings, epoch: int, device: torch.device) -> dict:
    model.train()
    total_loss = torch.zeros((), dtype=torch.float64, device=device)     # summed on the device: no sync per step
    correct = torch.zeros((), dtype=torch.int64, device=device)
    term_totals: dict[str, torch.Tensor] = {}                             # a recipe's loss terms, logged apart
    seen = 0
    for i, (images, masks, random_masks, labels) in enumerate(tqdm(loader, desc=f"epoch {epoch + 1}", leave=False)):
        set_learning_rate(optimizer, learning_rate(settings.optimiser, phase_progress(settings, epoch + i / len(loader))))
        images, labels = images.to(device), labels.to(device)
        mask = model_mask(settings.mask_mode, masks, random_masks)
        out = step(images, labels, None if mask is None else mask.to(device))
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        total_loss += out.loss.detach().double() * len(out.labels)
        correct += (out.logits.argmax(1) == out.labels).sum()
        for name, value in out.terms.items():
            term_totals[name] = term_totals.get(name, 0) + value.detach().double() * len(out.labels)
        seen += len(out.labels)
    return {"train_loss": total_loss.item() / seen, "train_accuracy": correct.item() / seen,
            **{f"train_{name}": total.item() / seen for name, total in term_totals.items()}}


def fit(model: nn.Module, step: TrainingStep, train_set: PreparedDataset, val_set: SampleTensors,
        val_subset: SampleTensors, settings: FitSettings, state_dir: Path, fingerprint: str, device: torch.device,
        on_epoch_end: Callable[[dict], None] = lambda metrics: None,
        warmup_step: TrainingStep | None = None, warmup_store: Path | None = None) -> list[dict]:
    """Train for settings.epochs, resuming from `state_dir` when it holds a state of this `fingerprint`.

    The first `settings.warmup_epochs` epochs train with `warmup_step` (e.g. clean images before PGD
    training: adversarial training from scratch learns slowly), the rest with `step`, as if fine-tuning
    a pretrained model: the learning-rate schedule restarts when the warm-up ends.

    After every epoch: clean accuracy on `val_set`, PGD accuracy on `val_subset` (named after
    settings.eval_name), a resume state, a
    weight snapshot in `state_dir/snapshots/` every `snapshot_every` epochs and after the last one, then
    `on_epoch_end(metrics)`. Returns the per-epoch metrics of the whole run (resumed epochs included).

    `warmup_store`: a folder for the state after the warm-up, shared by every run with the same warm-up
    (pipeline/train/shared_warmup.py): a fresh run continues from it when it exists, else fills it.
    """
    if settings.warmup_epochs and warmup_step is None:
        raise ValueError(f"warmup_epochs = {settings.warmup_epochs} needs a warmup_step")
    optimizer = build_optimizer(model, settings.optimiser)
    state = load_state(state_dir, model, optimizer, fingerprint)
    if state is None and warmup_store is not None and shared_warmup.restore(warmup_store, state_dir, fingerprint):
        state = load_state(state_dir, model, optimizer, fingerprint)
    state = state or ResumeState(0, [], fingerprint)
    if not state.epoch:
        clear_snapshots(state_dir)
    if state.epoch:
        log.info("resuming after epoch %d of %d from %s", state.epoch, settings.epochs, state_dir)
        for metrics in state.history:
            on_epoch_end(metrics)
    attack = PGD(model, settings.eval_eps, steps=settings.eval_steps, step_size=settings.eval_step_size,
                 seed=settings.seed)
    for epoch in range(state.epoch, settings.epochs):
        seed = epoch_seed(settings.seed, epoch)
        torch.manual_seed(seed)
        if train_set.transform is not None:
            train_set.transform.set_random_seed(seed)
        loader = DataLoader(train_set, batch_size=settings.batch_size, shuffle=True, drop_last=len(train_set) > settings.batch_size,
                            generator=torch.Generator().manual_seed(seed))
        epoch_step = warmup_step if epoch < settings.warmup_epochs else step
        metrics = {"epoch": epoch + 1, **train_epoch(model, epoch_step, loader, optimizer, settings, epoch, device),
                   f"{settings.eval_name}_accuracy": accuracy(model, val_set, EVAL_BATCH, device, settings.mask_mode),
                   f"{settings.eval_name}_pgd_accuracy": robust_accuracy(attack, val_subset, EVAL_BATCH, device, settings.mask_mode)}
        log.info("epoch %d/%d: %s", epoch + 1, settings.epochs,
                 ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "epoch"))
        state = ResumeState(epoch + 1, [*state.history, metrics], fingerprint)
        save_state(state_dir, model, optimizer, state)
        if epoch + 1 == settings.epochs or (settings.snapshot_every and (epoch + 1) % settings.snapshot_every == 0):
            save_snapshot(state_dir, model, epoch + 1)
        if warmup_store is not None and epoch + 1 == settings.warmup_epochs:
            shared_warmup.store(state_dir, warmup_store)
        on_epoch_end(metrics)
    model.eval()
    return state.history

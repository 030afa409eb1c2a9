"""The training loop: seeded epochs, per-iteration learning rate, per-epoch evaluation and resume state.

Every epoch reseeds torch and the shuffling from (seed, epoch), and each sample's augmentation and attack start
from (epoch seed, sample index) (pipeline/data/dataset.sample_seed), so a run resumed from an epoch checkpoint
produces the same weights as an uninterrupted one (on the same device), with any number of DataLoader workers, and
W data-parallel ranks train as one process on the same global batch (pipeline/train/data_parallel.py).
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
from pipeline.evaluation.accuracy import correct_flags, success_flags
from pipeline.train import shared_warmup
from pipeline.train.data_parallel import ONE_PROCESS, DataParallel
from pipeline.train.optim import build_optimizer, learning_rate, set_learning_rate
from pipeline.train.sharding import EpochShard
from pipeline.train.state import ResumeState, clear_snapshots, epoch_seed, load_state, save_snapshot, save_state

log = logging.getLogger(__name__)


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
    loader_workers: int = 0              # DataLoader processes (augmentation off the main process); no effect on results
    eval_batch: int = 256                # the per-epoch validation's batches (PGD draws its random start per batch)


def phase_progress(settings: FitSettings, epoch: float) -> float:
    """Progress ∈ [0, 1) through the current phase (warm-up, then the recipe): each runs its own schedule."""
    if epoch < settings.warmup_epochs:
        return epoch / settings.warmup_epochs
    return (epoch - settings.warmup_epochs) / (settings.epochs - settings.warmup_epochs)


def train_epoch(model: nn.Module, step: TrainingStep, loader: DataLoader, optimizer: torch.optim.Optimizer,
                settings: FitSettings, epoch: int, device: torch.device, ranks: DataParallel = ONE_PROCESS) -> dict:
    """One epoch over this rank's batches; the returned means are over every rank's samples."""
    model.train()
    total_loss = torch.zeros((), dtype=torch.float64, device=device)     # summed on the device: no sync per step
    correct = torch.zeros((), dtype=torch.int64, device=device)
    term_totals: dict[str, torch.Tensor] = {}                             # a recipe's loss terms, logged apart
    seen = torch.zeros((), dtype=torch.int64, device=device)
    batches = tqdm(loader, desc=f"epoch {epoch + 1}", leave=False, disable=not ranks.writes)
    for i, (images, masks, random_masks, labels, start_noise) in enumerate(batches):
        set_learning_rate(optimizer, learning_rate(settings.optimiser, phase_progress(settings, epoch + i / len(loader))))
        images, labels, start_noise = (t.to(device, non_blocking=True) for t in (images, labels, start_noise))
        mask = model_mask(settings.mask_mode, masks, random_masks)
        out = step(images, labels, None if mask is None else mask.to(device, non_blocking=True), start_noise)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        ranks.average_gradients(model)
        optimizer.step()
        total_loss += out.loss.detach().double() * len(out.labels)
        correct += (out.logits.argmax(1) == out.labels).sum()
        for name, value in out.terms.items():
            term_totals[name] = term_totals.get(name, 0) + value.detach().double() * len(out.labels)
        seen += len(out.labels)
    names = list(term_totals)
    totals = ranks.total(torch.stack([total_loss, correct.double(), seen.double(),
                                      *(term_totals[name] for name in names)]))
    seen_everywhere = totals[2].item()
    return {"train_loss": totals[0].item() / seen_everywhere, "train_accuracy": totals[1].item() / seen_everywhere,
            **{f"train_{name}": total.item() / seen_everywhere for name, total in zip(names, totals[3:], strict=True)}}


def evaluate(model: nn.Module, attack: PGD, val_set: SampleTensors, val_subset: SampleTensors, settings: FitSettings,
             device: torch.device, ranks: DataParallel = ONE_PROCESS) -> dict[str, float]:
    """Clean accuracy on `val_set` and `attack`'s robust accuracy on `val_subset`, named after settings.eval_name.

    Under torchrun each rank takes every W-th of one process's batches (`SampleTensors.batch_share`: whole batches,
    and the attack reseeds its generator per batch, so each batch's outcome is one process's) and the counts are
    summed over the ranks: one process's fractions, exactly."""
    def share(samples: SampleTensors) -> SampleTensors:
        return samples.batch_share(settings.eval_batch, ranks.rank, ranks.world)

    correct = correct_flags(model, share(val_set), settings.eval_batch, device, settings.mask_mode)
    robust = ~success_flags(attack, share(val_subset), settings.eval_batch, device, settings.mask_mode)
    counts = ranks.total(torch.tensor([correct.sum().item(), len(correct), robust.sum().item(), len(robust)],
                                      dtype=torch.float64, device=device)).tolist()
    return {f"{settings.eval_name}_accuracy": counts[0] / counts[1],
            f"{settings.eval_name}_pgd_accuracy": counts[2] / counts[3]}


def fit(model: nn.Module, step: TrainingStep, train_set: PreparedDataset, val_set: SampleTensors,
        val_subset: SampleTensors, settings: FitSettings, state_dir: Path, fingerprint: str, device: torch.device,
        on_epoch_end: Callable[[dict], None] = lambda metrics: None,
        warmup_step: TrainingStep | None = None, warmup_store: Path | None = None,
        ranks: DataParallel = ONE_PROCESS) -> list[dict]:
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

    `ranks`: data-parallel training (`model` already `ranks.prepare`d); the ranks share the evaluation (`evaluate`),
    rank 0 alone writes the state and calls `on_epoch_end`.
    """
    if settings.warmup_epochs and warmup_step is None:
        raise ValueError(f"warmup_epochs = {settings.warmup_epochs} needs a warmup_step")
    optimizer = build_optimizer(model, settings.optimiser)
    state = load_state(state_dir, model, optimizer, fingerprint)
    if state is None and warmup_store is not None:
        ranks.barrier()                          # every rank has read state_dir before rank 0 replaces it
        if ranks.writes:
            shared_warmup.restore(warmup_store, state_dir, fingerprint)
        ranks.barrier()
        state = load_state(state_dir, model, optimizer, fingerprint)
    state = state or ResumeState(0, [], fingerprint)
    if not state.epoch and ranks.writes:
        clear_snapshots(state_dir)
    if state.epoch:
        log.info("resuming after epoch %d of %d from %s", state.epoch, settings.epochs, state_dir)
        for metrics in state.history if ranks.writes else ():
            on_epoch_end(metrics)
    attack = PGD(model, settings.eval_eps, steps=settings.eval_steps, step_size=settings.eval_step_size,
                 seed=settings.seed)
    shard = EpochShard(len(train_set), ranks.rank, ranks.world)
    loader = DataLoader(train_set, batch_size=ranks.local_batch(settings.batch_size), sampler=shard,
                        drop_last=len(train_set) > settings.batch_size, num_workers=settings.loader_workers,
                        pin_memory=device.type == "cuda", persistent_workers=settings.loader_workers > 0)
    for epoch in range(state.epoch, settings.epochs):
        seed = epoch_seed(settings.seed, epoch)
        torch.manual_seed(seed)
        shard.set_epoch(seed)
        epoch_step = warmup_step if epoch < settings.warmup_epochs else step
        metrics = {"epoch": epoch + 1,
                   **train_epoch(model, epoch_step, loader, optimizer, settings, epoch, device, ranks),
                   **evaluate(model, attack, val_set, val_subset, settings, device, ranks)}
        state = ResumeState(epoch + 1, [*state.history, metrics], fingerprint)
        if ranks.writes:
            log.info("epoch %d/%d: %s", epoch + 1, settings.epochs,
                     ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "epoch"))
            save_state(state_dir, model, optimizer, state)
            if epoch + 1 == settings.epochs or (settings.snapshot_every and (epoch + 1) % settings.snapshot_every == 0):
                save_snapshot(state_dir, model, epoch + 1)
            if warmup_store is not None and epoch + 1 == settings.warmup_epochs:
                shared_warmup.store(state_dir, warmup_store)
            on_epoch_end(metrics)
    model.eval()
    return state.history

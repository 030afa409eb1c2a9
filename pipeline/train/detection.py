"""Training a DETR-family detector (Carion et al. 2020): the set loss of the model itself (Hungarian matching,
CE / focal / varifocal + L1 + GIoU, auxiliary decoder losses, RT-DETR's denoising queries), AdamW with a linear
warm-up, gradient clipping, seeded epochs and resume state.

Every epoch reseeds torch and the shuffling from (seed, epoch), so a resumed run gives the weights of an
uninterrupted one (on the same device). Horizontal flips move the boxes with the image. Images stream from the
archive batch by batch (DataLoader workers decode them), so the training split never sits in memory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from pipeline.config import Optimiser
from pipeline.data.coco_detection import StreamedImage, readable_images
from pipeline.data.images import SkipLog
from pipeline.errors import InputError
from pipeline.models.detr import Detector
from pipeline.train.data_parallel import ONE_PROCESS, DataParallel
from pipeline.train.optim import build_optimizer, learning_rate, set_learning_rate
from pipeline.train.state import ResumeState, epoch_seed, load_state, save_state

log = logging.getLogger(__name__)
LOGGED_TERMS = ("loss_ce", "loss_vfl", "loss_bbox", "loss_giou")   # the last decoder layer's (RT-DETR: varifocal)


@dataclass(frozen=True)
class DetectorFitSettings:
    epochs: int
    batch_size: int
    optimiser: Optimiser
    seed: int
    clip_norm: float                 # max L2 norm of the gradient (DETR: 0.1); 0 disables
    hflip: float                     # probability of a horizontal flip per image and epoch
    eval_every: int                  # validation mAP every n epochs (and after the last)
    warmup_steps: int = 0            # linear learning-rate warm-up over the first steps, then the schedule
    loader_workers: int = 0          # DataLoader processes decoding images (no effect on results)
    max_corrupt_share: float = 0.0   # unreadable training images tolerated (prepare.max_corrupt_share)


def step_learning_rate(settings: DetectorFitSettings, step: int, total: int) -> float:
    """The learning rate of optimiser step `step` (0-based) of `total`: the schedule at progress step / total, scaled
    by (step + 1) / warmup_steps during the linear warm-up."""
    warmup = min(1.0, (step + 1) / settings.warmup_steps) if settings.warmup_steps else 1.0
    return warmup * learning_rate(settings.optimiser, step / total)


def flipped(image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
    """The image mirrored left-right and its normalised (cx, cy, w, h) boxes with it: cx → 1 − cx."""
    boxes = target["boxes"].clone()
    boxes[:, 0] = 1 - boxes[:, 0]
    return image.flip(-1), {**target, "boxes": boxes}


def train_epoch(detector: Detector, images: Dataset, targets: list[dict], optimizer: torch.optim.Optimizer,
                settings: DetectorFitSettings, epoch: int, device: torch.device, skips: SkipLog,
                ranks: DataParallel = ONE_PROCESS) -> dict:
    """One pass over `images` (StreamedImage items, uint8 at the original size, read by settings.loader_workers
    processes; resized to the working size on `device`) with the model's own loss; mean loss terms. Under
    data-parallel `ranks`, rank r trains on every W-th image of each global batch from position r."""
    detector.train()
    generator = torch.Generator().manual_seed(epoch_seed(settings.seed, epoch))
    order = torch.randperm(len(images), generator=generator).tolist()
    flips = (torch.rand(len(images), generator=generator) < settings.hflip).tolist()
    batches = [order[i:i + settings.batch_size] for i in range(0, len(order), settings.batch_size)]
    if ranks.world > 1:              # every rank needs an image of each batch: its BatchNorm layers meet the others'
        batches = [batch for batch in batches if len(batch) >= ranks.world]
    loader = DataLoader(images, batch_sampler=[batch[ranks.rank::ranks.world] for batch in batches], collate_fn=list,
                        num_workers=settings.loader_workers, pin_memory=device.type == "cuda",
                        generator=torch.Generator())                           # leaves the global RNG alone
    totals: dict[str, torch.Tensor] = {}
    trained = 0
    for step, batch in enumerate(tqdm(loader, total=len(batches), desc=f"epoch {epoch + 1}", leave=False)):
        set_learning_rate(optimizer, step_learning_rate(settings, epoch * len(batches) + step,
                                                        len(batches) * settings.epochs))
        batch = readable_images(batch, skips, len(images), settings.max_corrupt_share)
        if not batch and ranks.world > 1:
            raise InputError(f"rank {ranks.rank}: every image of its share of batch {step + 1} is unreadable "
                             f"(see the skipped images above); the ranks cannot step together")
        if not batch:
            continue
        pairs = [working_pair(detector, image, targets[image.position], flips[image.position], device)
                 for image in batch]
        pixels, mask = detector.pad([image for image, _ in pairs])
        outputs = detector(pixels, mask, [target for _, target in pairs])
        optimizer.zero_grad(set_to_none=True)
        outputs.loss.backward()
        if ranks.world > 1:
            zero_missing_gradients(detector)
            ranks.average_gradients(detector)
        if settings.clip_norm:
            torch.nn.utils.clip_grad_norm_(detector.parameters(), settings.clip_norm)
        optimizer.step()
        terms = {"loss": outputs.loss, **{k: v for k, v in outputs.loss_dict.items() if k in LOGGED_TERMS}}
        for name, value in terms.items():
            totals[name] = totals.get(name, 0) + value.detach().double() * len(batch)
        trained += len(batch)
    names = sorted(totals)
    summed = ranks.total(torch.stack([*(totals[name] for name in names),
                                      torch.tensor(trained, dtype=torch.float64, device=device)]))
    return {f"train_{name}": (total / summed[-1]).item() for name, total in zip(names, summed)}


def zero_missing_gradients(model: nn.Module) -> None:
    """A zero gradient for every trainable parameter this rank's images did not reach (RT-DETR's denoising
    embedding when its images hold no box), so every rank all-reduces the same tensors."""
    for parameter in model.parameters():
        if parameter.requires_grad and parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)


def working_pair(detector: Detector, image: StreamedImage, target: dict, flip: bool,
                 device: torch.device) -> tuple[torch.Tensor, dict]:
    """A training image at the detector's working size on `device`, [0, 1], and its target; both mirrored when
    `flip`."""
    pixels = detector.resize(image.pixels.to(device, non_blocking=True).float() / 255)
    target = {key: value.to(device) for key, value in target.items()}
    return flipped(pixels, target) if flip else (pixels, target)


def fit_detector(detector: Detector, images: Dataset, targets: list[dict], evaluate: Callable[[], dict],
                 settings: DetectorFitSettings, state_dir: Path, fingerprint: str, device: torch.device,
                 on_epoch_end: Callable[[dict], None] = lambda metrics: None,
                 ranks: DataParallel = ONE_PROCESS) -> list[dict]:
    """Train on `images` (StreamedImage items; `targets` in the same order) for settings.epochs, resuming from
    `state_dir` when it holds a state of this `fingerprint`; `evaluate()` (validation metrics) runs every
    `eval_every` epochs and after the last. Returns every epoch's metrics (resumed ones included), each with
    `train_minutes`, the training wall time up to that epoch.

    `ranks`: data-parallel training (`detector` already `ranks.prepare`d: BatchNorm statistics over the global
    batch); gradients are averaged over the ranks before clipping, every rank calls `evaluate()` (which returns
    the metrics on rank 0, {} on the others), and rank 0 alone writes the state and calls `on_epoch_end`."""
    optimizer = build_optimizer(detector, settings.optimiser)
    state = load_state(state_dir, detector, optimizer, fingerprint) or ResumeState(0, [], fingerprint)
    if state.epoch:
        log.info("resuming after epoch %d of %d from %s", state.epoch, settings.epochs, state_dir)
        for metrics in state.history if ranks.writes else ():
            on_epoch_end(metrics)
    minutes = state.history[-1]["train_minutes"] if state.history else 0.0
    skips = SkipLog("detector training")
    for epoch in range(state.epoch, settings.epochs):
        torch.manual_seed(epoch_seed(settings.seed, epoch))
        start = time.perf_counter()
        metrics = {"epoch": epoch + 1,
                   **train_epoch(detector, images, targets, optimizer, settings, epoch, device, skips, ranks)}
        minutes += (time.perf_counter() - start) / 60
        metrics["train_minutes"] = minutes            # training wall time so far, evaluation left out
        if (epoch + 1) % settings.eval_every == 0 or epoch + 1 == settings.epochs:
            detector.eval()
            metrics.update(evaluate())
        state = ResumeState(epoch + 1, [*state.history, metrics], fingerprint)
        if not ranks.writes:
            continue
        log.info("epoch %d/%d: %s", epoch + 1, settings.epochs,
                 ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "epoch"))
        save_state(state_dir, detector, optimizer, state)
        on_epoch_end(metrics)
    detector.eval()
    return state.history

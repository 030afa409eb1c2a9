"""What the training stages share: the prepared splits, and `fit` with dvclive curves and metrics.json."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from dvclive import Live

from pipeline.config import Augment
from pipeline.data.dataset import PreparedDataset, SampleTensors, seeded_subset
from pipeline.data.holdout import holdout_indices
from pipeline.train.data_parallel import DataParallel
from pipeline.train.loop import FitSettings, fit
from stages.common import DATA
from stages.live import epoch_logger


@dataclass
class TrainingData:
    train: PreparedDataset           # augmented
    val: SampleTensors               # the whole validation split (or the held-out part): clean accuracy
    val_subset: SampleTensors        # a seeded subset of it: the per-epoch PGD accuracy
    meta: dict                       # the train split's meta.json
    identity: list[str]              # the splits' meta.json and index.json, for resume fingerprints
    eval_split: str = "val"          # what val and val_subset hold: "val", or "holdout" (tuning)


def training_data(dataset: str, augment: Augment | None, val_subset: int, seed: int,
                  holdout_share: float = 0.0) -> TrainingData:
    """The prepared splits of `dataset`; `augment` None trains on the images as they are.

    `holdout_share` > 0 (tuning a recipe's weights): that share of the training split's sources
    (pipeline/data/holdout.py) is kept out of training and evaluated instead of the validation split."""
    data = DATA / "prepare" / dataset
    identity = [(data / split / f).read_text() for split in ("train", "val") for f in ("meta.json", "index.json")]
    meta = json.loads((data / "train" / "meta.json").read_text())
    if holdout_share:
        labels = PreparedDataset(data / "train").labels
        held = holdout_indices(json.loads(identity[1]), labels, dataset, holdout_share, seed)
        rest = np.setdiff1d(np.arange(len(labels)), held)
        evaluated = SampleTensors(data / "train", held)
        return TrainingData(PreparedDataset(data / "train", augment, rest), evaluated,
                            SampleTensors(data / "train", held[seeded_subset(len(held), val_subset, seed)]),
                            meta, identity, "holdout")
    val = SampleTensors(data / "val")
    return TrainingData(PreparedDataset(data / "train", augment), val,
                        SampleTensors(data / "val", seeded_subset(len(val), val_subset, seed)), meta, identity)


def fit_with_curves(out: Path, model: torch.nn.Module, step, data: TrainingData, settings: FitSettings, identity: str,
                    device: torch.device, ranks: DataParallel, **warmup) -> list[dict]:
    """`fit` resuming from out/resume, with every epoch's metrics logged by dvclive under out/plots/ (by rank 0)."""
    if not ranks.writes:
        return fit(model, step, data.train, data.val, data.val_subset, settings, out / "resume", identity, device,
                   ranks=ranks, **warmup)
    live = Live(str(out), dvcyaml=False, save_dvc_exp=False)
    history = fit(model, step, data.train, data.val, data.val_subset, settings, out / "resume", identity, device,
                  epoch_logger(live), ranks=ranks, **warmup)
    live.end()
    return history


"""Stage `train_classifier@<name>`: train the `classifiers.<name>` entry (methods.md P1, recipes in pipeline/defenses).

Writes `data/train_classifier/<name>/`: model.safetensors + config.json (rebuilds the model),
metrics.json (last epoch), plots/ (dvclive curves per epoch), checkpoints/ (the weights of every
`checkpoint_every`-th epoch and of the last) and resume/ (the last epoch's state; an interrupted run
continues from it). Classifiers with the same clean warm-up share it through data/train_classifier/.warmups/
(pipeline/train/shared_warmup.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from dvclive import Live

from pipeline.config import Classifier
from pipeline.data.dataset import PreparedDataset, SampleTensors, seeded_subset
from pipeline.defenses import RecipeSettings, build_recipe
from pipeline.io.atomic import replace_folder, write_json
from pipeline.models.checkpoint import save_classifier
from pipeline.models.registry import build_classifier
from pipeline.train.loop import FitSettings, fit
from pipeline.train.state import SNAPSHOTS, fingerprint, library_digest
from stages.common import DATA, classifier_args, log, pick_device

WARMUPS = DATA / "train_classifier" / ".warmups"            # shared clean warm-ups (a memo, not a DVC output)
WARMUP_INDEPENDENT = {"recipe", "options", "epochs", "remask_at_test"}   # entry keys the warm-up does not depend on


def channel_stats(images: np.ndarray, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of N×H×W×3 uint8 images, in [0, 1] units."""
    total = np.zeros(3)
    squares = np.zeros(3)
    for start in range(0, len(images), chunk):
        part = images[start:start + chunk].reshape(-1, 3).astype(np.float64) / 255
        total += part.sum(0)
        squares += (part ** 2).sum(0)
    count = len(images) * images.shape[1] * images.shape[2]
    mean = total / count
    return mean.tolist(), np.sqrt(np.maximum(squares / count - mean ** 2, 1e-12)).tolist()


def model_config(entry: Classifier, train_set: PreparedDataset, meta: dict) -> dict:
    mean, std = channel_stats(train_set.images)
    return {"model": entry.model.model_dump(), "num_classes": len(meta["class_names"]),
            "class_names": meta["class_names"], "image_size": meta["image_size"], "dataset": entry.dataset,
            "mask": entry.mask, "fill": entry.fill, "recipe": entry.recipe, "mean": mean, "std": std}


def main() -> None:
    name, entry, params = classifier_args(__doc__.splitlines()[0])
    device = pick_device()
    data, out = DATA / "prepare" / entry.dataset, DATA / "train_classifier" / name
    train_meta = json.loads((data / "train" / "meta.json").read_text())
    train_set = PreparedDataset(data / "train", getattr(params.augment, entry.dataset))
    val_set = SampleTensors(data / "val")
    val_subset = SampleTensors(data / "val", seeded_subset(len(val_set), entry.val_subset, params.seed))
    config = model_config(entry, train_set, train_meta)
    torch.manual_seed(params.seed)
    model = build_classifier(config).to(device)

    eps, step = entry.adversary.eps_255 / 255, entry.adversary.step_255 / 255
    step_fn = build_recipe(entry.recipe, model, RecipeSettings(eps, step, entry.adversary.steps, options=entry.options))
    warmup_step = build_recipe("natural", model, RecipeSettings(eps, step, entry.adversary.steps)) if entry.warmup_epochs else None
    settings = FitSettings(entry.epochs, entry.batch_size, entry.optimiser, params.seed, entry.mask, eps, step,
                           entry.adversary.steps, entry.warmup_epochs, entry.checkpoint_every)
    inputs = [library_digest(), Path(__file__).read_text(), params.seed, getattr(params.augment, entry.dataset).model_dump(),
              *[(data / split / f).read_text() for split in ("train", "val") for f in ("meta.json", "index.json")]]
    identity = fingerprint(*inputs, entry.model_dump())
    warmup_identity = fingerprint(*inputs, entry.model_dump(exclude=WARMUP_INDEPENDENT), device.type)
    warmup_store = WARMUPS / warmup_identity[:20] if entry.warmup_epochs else None
    log.info("training %s: %s", name, entry.model_dump())
    live = Live(str(out), dvcyaml=False, save_dvc_exp=False)

    def log_epoch(metrics: dict) -> None:
        for key, value in metrics.items():
            if key != "epoch":
                live.log_metric(key, value)
        live.next_step()

    history = fit(model, step_fn, train_set, val_set, val_subset, settings, out / "resume", identity, device, log_epoch,
                  warmup_step, warmup_store)
    live.end()
    save_classifier(out, model, config)
    replace_folder(out / "resume" / SNAPSHOTS, out / "checkpoints")
    write_json(out / "metrics.json", history[-1])
    log.info("%s: clean val accuracy %.4f, PGD-%d accuracy %.4f on %d val images", name, history[-1]["val_accuracy"],
             entry.adversary.steps, history[-1]["val_pgd_accuracy"], len(val_subset))


if __name__ == "__main__":
    main()

"""Stage `train_classifier@<name>`: train the `classifiers.<name>` entry (methods.md P1, recipes in pipeline/defenses).

Writes `data/train_classifier/<name>/`: model.safetensors + config.json (rebuilds the model),
metrics.json (last epoch), plots/ (dvclive curves per epoch), checkpoints/ (the weights of every
`checkpoint_every`-th epoch and of the last) and resume/ (the last epoch's state; an interrupted run
continues from it). Classifiers with the same clean warm-up share it through data/train_classifier/.warmups/
(pipeline/train/shared_warmup.py); a natural classifier is the warm-up of its adversarial twins.
Several GPUs: `torchrun --nproc_per_node W -m stages.train_classifier <name>` trains data-parallel (batch_size stays
the global batch; pipeline/train/data_parallel.py).
"""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.config import Classifier
from pipeline.data.dataset import PreparedDataset, channel_stats
from pipeline.defenses import RecipeSettings, build_recipe
from pipeline.io.atomic import replace_folder, write_json
from pipeline.models.checkpoint import save_classifier
from pipeline.models.registry import build_classifier
from pipeline.train.data_parallel import DataParallel
from pipeline.train.loop import FitSettings
from pipeline.train.shared_warmup import warmup_length
from pipeline.train.state import SNAPSHOTS, fingerprint, library_digest
from stages.common import DATA, entry_args, log, pick_device, run_stage
from stages.training import fit_with_curves, training_data

WARMUPS = DATA / "train_classifier" / ".warmups"            # shared clean warm-ups (a memo, not a DVC output)
WARMUP_INDEPENDENT = {"recipe", "options", "epochs", "remask_at_test"}   # entry keys the warm-up does not depend on
EVALUATION_ONLY = {"attack_images"}      # entry keys training does not depend on (a change resumes the finished run)


def model_config(entry: Classifier, train_set: PreparedDataset, meta: dict) -> dict:
    mean, std = channel_stats(train_set.images)
    return {"model": entry.model.model_dump(), "num_classes": len(meta["class_names"]),
            "class_names": meta["class_names"], "image_size": meta["image_size"], "dataset": entry.dataset,
            "mask": entry.mask, "fill": entry.fill, "recipe": entry.recipe, "mean": mean, "std": std}


def main() -> None:
    name, entry, params = entry_args(__doc__.splitlines()[0])
    device = pick_device(params.accelerator)
    out = DATA / "train_classifier" / name
    augment = getattr(params.augment, entry.dataset)
    data = training_data(entry.dataset, augment, entry.val_subset, params.seed, entry.holdout_share)
    config = model_config(entry, data.train, data.meta)
    seed = params.seed if entry.seed is None else entry.seed    # the data splits stay on the top-level seed
    torch.manual_seed(seed)
    ranks = DataParallel.from_environment(device)
    model = ranks.prepare(build_classifier(config).to(device))

    eps, step = entry.adversary.eps_255 / 255, entry.adversary.step_255 / 255
    recipe = RecipeSettings(eps, step, entry.adversary.steps, entry.amp, entry.options)
    step_fn = build_recipe(entry.recipe, model, recipe)
    warmup_epochs = warmup_length(entry.recipe, entry.epochs, entry.warmup_epochs)
    warmup_step = None
    if warmup_epochs:     # clean epochs: a natural entry's own step, else a natural step built for them
        warmup_step = step_fn if entry.recipe == "natural" else build_recipe(
            "natural", model, RecipeSettings(eps, step, entry.adversary.steps, entry.amp))
    settings = FitSettings(entry.epochs, entry.batch_size, entry.optimiser, seed, entry.mask, eps, step,
                           entry.adversary.steps, warmup_epochs, entry.checkpoint_every, data.eval_split,
                           params.loader_workers)
    inputs = [library_digest(), Path(__file__).read_text(), params.seed, augment.model_dump(), *data.identity]
    identity = fingerprint(*inputs, entry.model_dump(exclude=EVALUATION_ONLY))
    warmup_key = {**entry.model_dump(exclude=WARMUP_INDEPENDENT | EVALUATION_ONLY), "warmup_epochs": warmup_epochs}
    warmup_store = WARMUPS / fingerprint(*inputs, warmup_key, device.type)[:20] if warmup_epochs else None
    log.info("training %s: %s", name, entry.model_dump())
    history = fit_with_curves(out, model, step_fn, data, settings, identity, device, ranks, warmup_step=warmup_step,
                              warmup_store=warmup_store)
    if not ranks.writes:
        return
    save_classifier(out, model, config)
    replace_folder(out / "resume" / SNAPSHOTS, out / "checkpoints")
    write_json(out / "metrics.json", history[-1])
    split = data.eval_split
    log.info("%s: clean %s accuracy %.4f, PGD-%d accuracy %.4f on %d %s images", name, split,
             history[-1][f"{split}_accuracy"], entry.adversary.steps, history[-1][f"{split}_pgd_accuracy"],
             len(data.val_subset), split)


if __name__ == "__main__":
    run_stage(main)

"""Stage `train_vit@<name>`: the `train_vit.<name>` ViT / DeiT for the Attention-Fool attacks (seed 003, methods.md P4).

`init: pretrained` fine-tunes a hub checkpoint or local folder (head resized to the dataset's classes; epochs 0
uses it as it is); `init: config` trains the configured model from scratch. Clean training (recipe natural)
with the shared loop: resumable, per-epoch clean and PGD validation accuracy.

Writes `data/train_vit/<name>/`: model/ (a `save_pretrained` folder with the image processor, whose size,
mean and std the attacks' wrapper reads), metrics.json (last epoch), plots/ (dvclive curves) and resume/.
Several GPUs: `torchrun --nproc_per_node W -m stages.train_vit <name>` trains data-parallel (batch_size stays
the global batch; pipeline/train/data_parallel.py).
"""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.config import VitModel
from pipeline.data.dataset import channel_stats
from pipeline.defenses import RecipeSettings, build_recipe
from pipeline.evaluation.accuracy import accuracy
from pipeline.io.atomic import write_json
from pipeline.models.vit import classifier_of, image_processor, save_vit, vit_from_config, vit_from_pretrained
from pipeline.train.data_parallel import DataParallel
from pipeline.train.loop import FitSettings
from pipeline.train.state import fingerprint, library_digest
from stages.common import DATA, entry_args, log, pick_device, run_stage
from stages.training import TrainingData, fit_with_curves, training_data


def initial_model(entry: VitModel, data: TrainingData, seed: int):
    """(ViTClassifier, image processor) before training."""
    class_names = data.meta["class_names"]
    if entry.init == "pretrained":
        log.info("loading %s (HF_HUB_OFFLINE and the Hugging Face cache apply)", entry.pretrained)
        model, processor = vit_from_pretrained(entry.pretrained, class_names)
    else:
        torch.manual_seed(seed)
        model = vit_from_config(entry.config, entry.image_size, class_names)
        processor = image_processor(entry.image_size, *channel_stats(data.train.images))
    return classifier_of(model, processor), processor


def main() -> None:
    name, entry, params = entry_args(__doc__.splitlines()[0], "train_vit")
    device = pick_device(params.accelerator)
    out = DATA / "train_vit" / name
    augment = getattr(params.augment, entry.dataset) if entry.augment else None
    data = training_data(entry.dataset, augment, entry.val_subset, params.seed)
    classifier, processor = initial_model(entry, data, params.seed)
    ranks = DataParallel.from_environment(device)
    classifier = ranks.prepare(classifier.to(device))
    log.info("%s: %s, %d tokens of %d px at %s, %.1fM parameters", name, classifier.hf_model.config.model_type,
             classifier.grid_width ** 2, classifier.token_size, classifier.size,
             sum(p.numel() for p in classifier.parameters()) / 1e6)

    eps, step = entry.adversary.eps_255 / 255, entry.adversary.step_255 / 255
    settings = FitSettings(entry.epochs, entry.batch_size, entry.optimiser, params.seed, "none", eps, step,
                           entry.adversary.steps, loader_workers=params.loader_workers)
    identity = fingerprint(library_digest(), Path(__file__).read_text(), params.seed, augment and augment.model_dump(),
                           *data.identity, entry.model_dump())
    natural = build_recipe("natural", classifier, RecipeSettings(eps, step, entry.adversary.steps, entry.amp))
    history = fit_with_curves(out, classifier, natural, data, settings, identity, device, ranks)
    if not ranks.writes:
        return
    classifier.eval()
    metrics = history[-1] if history else {"epoch": 0, "val_accuracy": accuracy(classifier, data.val, entry.batch_size,
                                                                               device, "none")}
    save_vit(out / "model", classifier, processor)
    write_json(out / "metrics.json", metrics)
    log.info("%s: clean val accuracy %.4f after %d epochs", name, metrics["val_accuracy"], entry.epochs)


if __name__ == "__main__":
    run_stage(main)

"""Cost of one training epoch per recipe, on the same random data and model, with the library's `train_epoch`.

Targets: Madry (PGD-k) ≤ 1.15·(k + 1) × natural (issue "Masked classifiers"); AAD ≤ 2.5 × Madry
(issue "Attention defenses"). ALP, AT+ALP and TRADES are reported beside them.
Run: python -m benchmarks.recipe_epochs   → benchmarks/results/recipe_epochs.json
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset

from benchmarks.common import best_time, device, machine, save
from pipeline.config import Optimiser
from pipeline.defenses import RecipeSettings, build_recipe
from pipeline.models.registry import build_classifier
from pipeline.train.loop import FitSettings, train_epoch
from pipeline.train.optim import build_optimizer

K, SIZE, COUNT, BATCH = 7, 32, 1024, 128
RECIPES = ("natural", "madry", "alp", "at_alp", "trades", "aad")
AAD_LIMIT = 2.5
CONFIG = {"model": {"arch": "small_cnn", "width": 16}, "num_classes": 10, "mean": [0.5] * 3, "std": [0.25] * 3,
          "mask": "foreground", "fill": 0.0}


def main() -> None:
    dev = device()
    torch.manual_seed(0)
    data = TensorDataset(torch.rand(COUNT, 3, SIZE, SIZE), torch.ones(COUNT, 1, SIZE, SIZE),   # image, masks,
                         torch.ones(COUNT, 1, SIZE, SIZE), torch.randint(0, 10, (COUNT,)),     # label, PGD's start
                         torch.randn(COUNT, 3, SIZE, SIZE))                                    # noise (dataset.py)
    loader = DataLoader(data, batch_size=BATCH)
    optimiser = Optimiser(name="sgd", lr=0.01, momentum=0.9, weight_decay=0.0, schedule="constant")
    settings = FitSettings(1, BATCH, optimiser, 0, "foreground", 8 / 255, 2 / 255, K)
    seconds = {}
    for recipe in RECIPES:
        model = build_classifier(CONFIG).to(dev)
        step = build_recipe(recipe, model, RecipeSettings(8 / 255, 2 / 255, K))
        optimizer = build_optimizer(model, optimiser)
        seconds[recipe] = best_time(lambda: train_epoch(model, step, loader, optimizer, settings, 0, dev), dev, repeats=3)
    madry_ratio, aad_ratio = seconds["madry"] / seconds["natural"], seconds["aad"] / seconds["madry"]
    save("recipe_epochs", {"machine": machine(dev), "k": K, "images": COUNT, "image_size": SIZE,
                           "seconds_per_epoch": seconds,
                           "madry_over_natural": madry_ratio, "madry_limit": 1.15 * (K + 1),
                           "aad_over_madry": aad_ratio, "aad_limit": AAD_LIMIT,
                           "within_limits": madry_ratio <= 1.15 * (K + 1) and aad_ratio <= AAD_LIMIT}, dev)


if __name__ == "__main__":
    main()

"""Cost of one Madry epoch (PGD-k training) relative to one natural epoch (target: ≤ 1.15·(k + 1)).

Both epochs run the library's `train_epoch` on the same random data and model.
Run: python -m benchmarks.madry_epoch   → benchmarks/results/madry_epoch.json
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
CONFIG = {"model": {"arch": "small_cnn", "width": 16}, "num_classes": 10, "mean": [0.5] * 3, "std": [0.25] * 3,
          "mask": "foreground", "fill": 0.0}


def main() -> None:
    dev = device()
    torch.manual_seed(0)
    data = TensorDataset(torch.rand(COUNT, 3, SIZE, SIZE), torch.ones(COUNT, 1, SIZE, SIZE),
                         torch.ones(COUNT, 1, SIZE, SIZE), torch.randint(0, 10, (COUNT,)))
    loader = DataLoader(data, batch_size=BATCH)
    optimiser = Optimiser(name="sgd", lr=0.01, momentum=0.9, weight_decay=0.0, schedule="constant")
    settings = FitSettings(1, BATCH, optimiser, 0, "foreground", 8 / 255, 2 / 255, K)
    seconds = {}
    for recipe in ("natural", "madry"):
        model = build_classifier(CONFIG).to(dev)
        step = build_recipe(recipe, model, RecipeSettings(8 / 255, 2 / 255, K))
        optimizer = build_optimizer(model, optimiser)
        seconds[recipe] = best_time(lambda: train_epoch(model, step, loader, optimizer, settings, 0, dev), dev, repeats=3)
    ratio = seconds["madry"] / seconds["natural"]
    save("madry_epoch", {"machine": machine(dev), "k": K, "images": COUNT, "image_size": SIZE,
                         "natural_s": seconds["natural"], "madry_s": seconds["madry"], "ratio": ratio,
                         "limit": 1.15 * (K + 1), "within_limit": ratio <= 1.15 * (K + 1)})


if __name__ == "__main__":
    main()

"""Small models and data with known answers for attack and training tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipeline.models.small_cnn import small_cnn
from pipeline.models.wrappers import Normalized


class LinearBinary(nn.Module):
    """Logits (−s/2, s/2) with s = wᵀx + b: the L∞ optimum against it has a closed form."""

    def __init__(self, w: torch.Tensor, b: float):
        super().__init__()
        self.w, self.b = nn.Parameter(w.clone()), nn.Parameter(torch.tensor(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.flatten(1) @ self.w.flatten() + self.b
        return torch.stack([-s / 2, s / 2], dim=1)


def stripes(n: int, size: int = 16, amplitude: float = 6 / 255, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """4 classes of faint oriented stripes (±amplitude around grey, plus noise): learnable, not robust at 8/255."""
    g = torch.Generator().manual_seed(seed)
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    patterns = torch.stack([(rows % 2) * 2 - 1, (cols % 2) * 2 - 1, ((rows + cols) % 2) * 2 - 1,
                            ((rows // 2 + cols // 2) % 2) * 2 - 1]).float()
    labels = torch.randint(0, 4, (n,), generator=g)
    noise = torch.randn(n, 3, size, size, generator=g) * 0.01
    images = 0.5 + amplitude * patterns[labels][:, None] + noise
    return images.clamp(0, 1), labels


def train_stripes_model(seed: int = 0, epochs: int = 6) -> nn.Module:
    """A naturally trained small CNN on `stripes` (≈100% clean accuracy), returned in eval mode."""
    torch.manual_seed(seed)
    model = Normalized(small_cnn(4, 8), [0.5] * 3, [0.1] * 3)
    images, labels = stripes(1024, seed=seed + 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(epochs):
        for start in range(0, len(images), 64):
            loss = nn.functional.cross_entropy(model(images[start:start + 64]), labels[start:start + 64])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def prepared_split(folder: Path, n: int, seed: int) -> Path:
    """A prepared split (pipeline/data/dataset.PreparedDataset's files) of `n` 16-px stripe images with a centre
    foreground mask and a shifted random mask."""
    images, labels = stripes(n, seed=seed)
    folder.mkdir(parents=True)
    np.save(folder / "images.npy", (images.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8))
    masks = np.zeros((n, 16, 16), np.uint8)
    masks[:, 2:14, 2:14] = 1
    np.save(folder / "masks.npy", masks)
    np.save(folder / "random_masks.npy", np.roll(masks, 2, axis=2))
    np.save(folder / "labels.npy", labels.numpy().astype(np.int64))
    return folder

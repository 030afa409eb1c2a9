"""Optimiser and learning-rate schedule from the `optimiser` entry of a classifier."""

from __future__ import annotations

import math

import torch
from torch import nn

from pipeline.config import Optimiser


def build_optimizer(model: nn.Module, cfg: Optimiser) -> torch.optim.Optimizer:
    """SGD (Nesterov-free, with momentum), Adam (L2 penalty) or AdamW (decoupled decay); decay on every parameter."""
    if cfg.name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    adam = torch.optim.AdamW if cfg.name == "adamw" else torch.optim.Adam
    return adam(model.parameters(), lr=cfg.lr, betas=(cfg.momentum, 0.999), weight_decay=cfg.weight_decay)


def learning_rate(cfg: Optimiser, progress: float) -> float:
    """lr at `progress` ∈ [0, 1) of training: constant, or cosine from lr to 0 (Loshchilov & Hutter 2017)."""
    if cfg.schedule == "constant":
        return cfg.lr
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr

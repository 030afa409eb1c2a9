"""Finding a classifier's layers through its wrappers, and capturing their outputs with forward hooks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from pipeline.models.blocks import BlockClassifier


def block_classifier(model: nn.Module) -> BlockClassifier:
    """The `BlockClassifier` inside the `Masked` / `Normalized` wrappers."""
    inner = model
    while not isinstance(inner, BlockClassifier):
        wrapped = [child for name, child in inner.named_children() if name in ("model", "net")]
        if not wrapped:
            raise TypeError(f"{type(model).__name__} wraps no BlockClassifier (blocks + head)")
        inner = wrapped[0]
    return inner


def named_layer(model: nn.Module, name: str | None) -> nn.Module:
    """The layer `name` of the block classifier (a dotted path such as "blocks.1" or "blocks.3.1.conv2"),
    or its last block when `name` is None (Grad-CAM's "last convolutional layer")."""
    network = block_classifier(model)
    if name is None:
        return network.blocks[-1]
    try:
        return network.get_submodule(name)
    except AttributeError:
        known = [n for n, _ in network.named_modules() if n][:12]
        raise ValueError(f"no layer {name!r} in the classifier; layer names look like {known}") from None


@contextmanager
def captured_outputs(layers: list[nn.Module]) -> Iterator[list[torch.Tensor | None]]:
    """Within the block, `outputs[i]` is the output of `layers[i]` in the latest forward pass (graph kept)."""
    outputs: list[torch.Tensor | None] = [None] * len(layers)

    def hook_for(index: int):
        def hook(module, inputs, output):
            outputs[index] = output
        return hook

    handles = [layer.register_forward_hook(hook_for(i)) for i, layer in enumerate(layers)]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()

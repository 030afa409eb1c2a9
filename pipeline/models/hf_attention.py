"""Pre-softmax query/key projections of Hugging Face ViT / DeiT attention layers (seed 003, methods.md P4).

Forward hooks on each layer's `q_proj` and `k_proj` see the same tensors under every attention
implementation (eager, SDPA, flash): the projections run before the implementation is chosen. This is
why Attention-Fool cannot use `output_attentions`, which returns post-softmax weights and only under eager.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from pipeline.errors import InputError


@dataclass
class QueryKey:
    """One layer's projections, B×H×n×d (heads split), with the projection biases included."""

    query: torch.Tensor
    key: torch.Tensor


def attention_layers(model: nn.Module, required: bool = True) -> list[nn.Module]:
    """The self-attention modules of `model` in forward order (modules with q_proj, k_proj and head_dim);
    a model without any is an error unless `required` is off (a CNN then gives [])."""
    layers = [m for m in model.modules() if all(hasattr(m, a) for a in ("q_proj", "k_proj", "head_dim"))]
    if not layers and required:
        raise InputError(f"{type(model).__name__} has no attention module with q_proj/k_proj/head_dim "
                         "(a Hugging Face ViT, DeiT or DETR of transformers ≥ 5 has them)")
    return layers


@contextmanager
def captured_query_keys(model: nn.Module, layers: list[nn.Module] | None = None) -> Iterator[list[QueryKey]]:
    """Inside the block, every forward pass appends one QueryKey per attention layer of `model` (or of `layers`
    alone, in that order) to the yielded list (cleared at the start of each pass through the first layer).
    Gradients flow through the tensors."""
    layers = attention_layers(model) if layers is None else layers
    captured: list[QueryKey] = []
    pending: dict[int, torch.Tensor] = {}

    def split(layer: nn.Module, output: torch.Tensor) -> torch.Tensor:
        return output.view(*output.shape[:-1], -1, layer.head_dim).transpose(-3, -2)

    def on_query(index: int, layer: nn.Module):
        def hook(_module, _inputs, output):
            if index == 0:
                captured.clear()
            pending[index] = split(layer, output)
        return hook

    def on_key(index: int, layer: nn.Module):
        def hook(_module, _inputs, output):
            captured.append(QueryKey(pending.pop(index), split(layer, output)))
        return hook

    handles = []
    for index, layer in enumerate(layers):
        handles.append(layer.q_proj.register_forward_hook(on_query(index, layer)))
        handles.append(layer.k_proj.register_forward_hook(on_key(index, layer)))
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def _token_mean(values: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """B×H×n(×d) → the mean over tokens, over the `valid` (B×n bool) ones only when given (a padded batch)."""
    if valid is None:
        return values.mean(2)
    weights = valid[:, None, :].to(values.dtype)
    weights = weights[..., None] if values.dim() == 4 else weights
    return (values * weights).sum(2) / weights.sum(2)


def _scale(query: torch.Tensor, key: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """1 / (mean_j ‖q_j‖ · mean_j ‖k_j‖), B×H: the L1,2 normalisation of both projections, as one factor."""
    return 1 / (_token_mean(query.norm(dim=-1), valid) * _token_mean(key.norm(dim=-1), valid))


def key_query_scores(layer: QueryKey, normalise: bool) -> torch.Tensor:
    """B^{hl} = P̄_Q P̄_Kᵀ / √d_k for every query and key: B×H×n×n (rows = queries, columns = keys), in fp32;
    P̄ = P / (mean over tokens of the row L2 norm of P) per image, head and layer (methods.md P4)."""
    query, key = layer.query.float(), layer.key.float()
    scores = query @ key.transpose(-1, -2) / query.shape[-1] ** 0.5
    return scores * _scale(query, key)[..., None, None] if normalise else scores


def query_score_on_key(layer: QueryKey, tokens: torch.Tensor, normalise: bool, cls_only: bool,
                       valid: torch.Tensor | None = None) -> torch.Tensor:
    """B̄^{hl}_{·,i*}: the mean over queries (or the CLS query's, `cls_only`) of B^{hl}_{j,i*} for one key per image
    (`tokens`, B long): B×H in fp32. mean_j q̄_j·k̄ = (mean_j q̄_j)·k̄, so no n-long column is formed. `valid`
    (B×n bool) restricts the means over tokens to the image tokens of a padded batch (DETR)."""
    query, key = layer.query.float(), layer.key.float()
    chosen = key[torch.arange(len(tokens), device=key.device), :, tokens]                    # B×H×d
    queries = query[..., 0, :] if cls_only else _token_mean(query, valid)                     # B×H×d
    scores = (queries * chosen).sum(-1) / query.shape[-1] ** 0.5
    return scores * _scale(query, key, valid) if normalise else scores

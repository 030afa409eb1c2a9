"""Attention-Fool losses (Lovisotto et al., CVPR 2022, seed 003; methods.md P4) on captured q/k projections.

L_kq^{hl}  = mean_j B^{hl}_{j,i*}   every query's pre-softmax score for the patch key i*
L_kq*^{hl} = B^{hl}_{0,i*}          the CLS query's score only
aggregated over the heads of a layer, then over layers: `smooth_max` (logsumexp, the paper), `max` or `mean`.
Patch-Fool's attention loss (Fu et al., ICLR 2022) is here for comparison: the post-softmax attention
weight on i*, mean over queries, aggregated the same way. Each loss returns one value per image.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

from pipeline.models.hf_attention import QueryKey, key_query_scores, query_score_on_key

Aggregation = Literal["smooth_max", "max", "mean"]
Objective = Literal["kq", "kq_cls", "patch_fool"]
ATTENTION_LOSSES: tuple[Objective, ...] = get_args(Objective)


def aggregate(values: torch.Tensor, how: Aggregation) -> torch.Tensor:
    """L×B×H per-head values → B: reduce the heads of each layer, then the layers."""
    if how == "smooth_max":
        return values.logsumexp(-1).logsumexp(0)
    if how == "max":
        return values.amax(-1).amax(0)
    if how == "mean":
        return values.mean(-1).mean(0)
    raise ValueError(f"aggregation {how!r}: use smooth_max, max or mean")


def attention_loss(layers: list[QueryKey], tokens: torch.Tensor, objective: Objective, normalise: bool = True,
                   aggregation: Aggregation = "smooth_max", valid: torch.Tensor | None = None) -> torch.Tensor:
    """The per-image attention objective for the patch key `tokens` (B long), to be maximised; `valid` (B×n bool,
    L_kq only) keeps the padding tokens of a padded batch out of the means over queries."""
    if objective == "patch_fool":
        rows = torch.arange(len(tokens), device=tokens.device)
        per_head = [key_query_scores(layer, normalise=False).softmax(-1)[rows, :, :, tokens].mean(-1)
                    for layer in layers]                                            # attention weights, B×H
    else:
        per_head = [query_score_on_key(layer, tokens, normalise, objective == "kq_cls", valid) for layer in layers]
    return aggregate(torch.stack(per_head), aggregation)

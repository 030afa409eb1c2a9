"""Running the Attention-Fool patch attack over an evaluation set (seed 003, methods.md P4): per-image
success, iterations and attention on the patch token, and the image-weighted curves of every batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm import tqdm

from pipeline.attacks.patch import PatchAttack, PatchPlacement
from pipeline.evaluation.curves import padded_mean
from pipeline.evaluation.suite import accuracy_summary
from pipeline.evaluation.vit_attention import token_attention
from pipeline.models.vit import ViTClassifier

Run = tuple[str, str, str]          # (placement, optimiser, objective)


@dataclass
class Target:
    model: torch.nn.Module
    placement: PatchPlacement
    patch_cells: int              # patch side in cells of the placement grid
    class_names: list[str]

    @property
    def is_vit(self) -> bool:
        return isinstance(self.model, ViTClassifier)

    @property
    def patch_px(self) -> int:
        return self.patch_cells * self.placement.token_size

    def inputs(self, images: torch.Tensor) -> torch.Tensor:
        """Images at the resolution the patch is placed in: the ViT's own input size."""
        return self.model.resize(images) if self.is_vit else images


@dataclass
class RunResult:
    success: torch.Tensor                  # N bool
    first_success: torch.Tensor            # N long, −1: never
    attention_after: torch.Tensor | None   # N, on the patch token with the final patch (ViT)
    loss_curve: list[float]
    attention_curve: list[float]
    examples: torch.Tensor                 # the first `grid_images` patched images
    patches: torch.Tensor                  # N×3×s×s final patches


def clean_attention(target: Target, clean_inputs: torch.Tensor, cells: torch.Tensor, batch_size: int) -> torch.Tensor | None:
    """Attention on the token under each patch cell, without the patch (ViT; None for a CNN)."""
    if not target.is_vit:
        return None
    tokens = target.placement.key_tokens(cells.to(clean_inputs.device))
    return torch.cat([token_attention(target.model, x, t).cpu()
                      for x, t in zip(clean_inputs.split(batch_size), tokens.split(batch_size))])


def run_attack(attack: PatchAttack, inputs: torch.Tensor, labels: torch.Tensor, cells: torch.Tensor,
               batch_size: int, keep: int, label: str) -> RunResult:
    """`attack` on N images already at the target's resolution (`Target.inputs`), in batches, with patch cells
    `cells` (N×2); the first `keep` patched images are kept."""
    success, first, after, losses, attentions, examples, patches = [], [], [], [], [], [], []
    batches = zip(inputs.split(batch_size), labels.to(inputs.device).split(batch_size),
                  cells.to(inputs.device).split(batch_size))
    for images, truth, part in tqdm(batches, desc=label, total=len(range(0, len(inputs), batch_size)), leave=False):
        result = attack(images, truth, part)
        success.append(result.success.cpu())
        first.append(result.first_success.cpu())
        if result.attention is not None:
            after.append(result.attention.cpu())
        losses.append((result.loss_curve, len(truth)))
        attentions.append((result.attention_curve, len(truth)))
        examples.append(result.patched[:keep].cpu())
        patches.append(result.patch.cpu())
    return RunResult(torch.cat(success), torch.cat(first), torch.cat(after) if after else None, padded_mean(losses),
                     padded_mean(attentions) if after else [], torch.cat(examples)[:keep], torch.cat(patches))


def run_metrics(result: RunResult, clean_correct: torch.Tensor, attention_before: torch.Tensor | None) -> dict:
    broken = clean_correct & result.success                  # correctly classified images the patch fooled
    iterations = result.first_success[broken].double()
    metrics = {"robust": accuracy_summary(~result.success),
               "success_rate": broken.sum().item() / max(clean_correct.sum().item(), 1),
               "iterations_to_success": {"mean": iterations.mean().item() if len(iterations) else None,
                                         "median": iterations.median().item() if len(iterations) else None}}
    if attention_before is not None:
        metrics["attention_on_patch"] = {"before": attention_before.mean().item(),
                                         "after": result.attention_after.mean().item()}
    return metrics

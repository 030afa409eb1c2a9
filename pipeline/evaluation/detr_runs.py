"""Running the DETR patch attack over an evaluation set (seed 003 §5.3, methods.md P4): where each patch goes,
which encoder token lies under it, and the patched images, curves and attention of every batch."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from tqdm import tqdm

from pipeline.attacks.detr_patch import DetrPatchAttack, attention_to_key, image_mean
from pipeline.attacks.patch import apply_patch
from pipeline.evaluation.curves import padded_mean
from pipeline.models.detr import Detector, same_size_batches
from pipeline.models.hf_attention import captured_query_keys


def patch_corner(centre: tuple[int, int], size: int) -> tuple[int, int]:
    """(row, col) of the top-left pixel of a `size` patch centred at pixel `centre` (row, col): the paper's 64 px
    patch at (80, 80) covers pixels 48 … 111."""
    return centre[0] - size // 2, centre[1] - size // 2


def check_fits(corner: tuple[int, int], size: int, inputs: list[torch.Tensor], image_ids: list[int]) -> None:
    for image, image_id in zip(inputs, image_ids):
        height, width = image.shape[-2:]
        if min(corner) < 0 or corner[0] + size > height or corner[1] + size > width:
            raise ValueError(f"image {image_id}: a {size} px patch at top-left {corner} does not fit its working size "
                             f"{height}x{width} (attack_detr.centre and patch_px)")


def key_cell(corner: tuple[int, int], size: int, stride: int) -> tuple[int, int]:
    """The encoder token cell under the patch: the cell holding its centre pixel (corner + (size − 1)/2), i.e.
    cell (2, 2) at stride 32 and (4, 4) at stride 16 (DC5) for the paper's patches at (80, 80)."""
    return tuple(int((c + (size - 1) / 2) // stride) for c in corner)


def backbone_stride(pixels: torch.Tensor, grid_rows: int) -> int:
    """The backbone's output stride: the power of two nearest padded height / token rows."""
    return 2 ** round(math.log2(pixels.shape[-2] / grid_rows))


@dataclass
class DetrRunResult:
    patches: torch.Tensor                # N×3×s×s, the final patch of each image
    loss_curve: list[float]
    attention_curve: list[float]
    attention_before: torch.Tensor       # N: first-encoder-layer attention on the patch key, clean
    attention_after: torch.Tensor        # N: the same with the final patch
    key_cell: tuple[int, int]            # the encoder token cell under the patch
    stride: int                          # the backbone's output stride
    maps_before: list[torch.Tensor]      # the first `keep` images: h×w attention of every query on the key, clean
    maps_after: list[torch.Tensor]       # … patched
    snapshots: dict[int, torch.Tensor]   # iteration t → N×3×s×s patches after t updates (the attack's snapshot_steps)

    def patched(self, inputs: list[torch.Tensor], corner: tuple[int, int]) -> list[torch.Tensor]:
        """`inputs` (working size) with the final patches written at pixel `corner` (row, col): the images are
        derived, not kept, since at 800 px they would take 10 MB each per run, in memory and in the run store."""
        return patched_images(inputs, self.patches, corner)

    def patched_at(self, step: int, inputs: list[torch.Tensor], corner: tuple[int, int]) -> list[torch.Tensor]:
        """`inputs` with the patches of snapshot `step` written at pixel `corner` (row, col)."""
        return patched_images(inputs, self.snapshots[step], corner)


def patched_images(inputs: list[torch.Tensor], patches: torch.Tensor, corner: tuple[int, int]) -> list[torch.Tensor]:
    """Each image of `inputs` with its patch of `patches` written at pixel `corner` (row, col)."""
    corners = torch.tensor([corner])
    return [apply_patch(image[None], patch[None].to(image.device), corners.to(image.device), 1)[0]
            for image, patch in zip(inputs, patches)]


def initial_patch(size: int, seed: int, image_id: int) -> torch.Tensor:
    """3×size×size from U[0, 1], drawn from (seed, image id): the same start however the images are batched."""
    return torch.rand(3, size, size, generator=torch.Generator().manual_seed(seed * 1_000_003 + image_id))


def attention_maps(detector: Detector, pixels: torch.Tensor, mask: torch.Tensor, tokens: torch.Tensor,
                   valid: torch.Tensor) -> torch.Tensor:
    """B×n: first-encoder-layer attention of every query on each image's key token (no gradient)."""
    with torch.no_grad(), captured_query_keys(detector, [detector.attention]) as captured:
        detector(pixels, mask)
        return attention_to_key(captured[0], tokens, valid)


def run_detr_attack(attack: DetrPatchAttack, inputs: list[torch.Tensor], image_ids: list[int], centre: tuple[int, int],
                    batch_size: int, keep: int, label: str, seed: int = 0) -> DetrRunResult:
    """`attack` on working-size images, each patch centred at pixel `centre`, in batches of one size (DETR's
    convolutions see padding, so a padded batch would optimise each patch for an input it is not scored on); each
    image's initial patch is drawn from (`seed`, its image id), so no result depends on the batching. Per-image
    results in the order of `inputs`."""
    detector, size = attack.detector, attack.patch_size
    corner = patch_corner(centre, size)
    check_fits(corner, size, inputs, image_ids)
    per_image: dict[str, list] = {k: [None] * len(inputs) for k in ("patch", "before", "after", "maps", "snapshots")}
    losses, attentions = [], []
    for batch in tqdm(same_size_batches(inputs, batch_size), desc=label, leave=False):
        pixels, mask = detector.pad([inputs[i] for i in batch])
        grid = detector.token_grid(pixels, mask)                                          # B×h×w
        stride = backbone_stride(pixels, grid.shape[1])
        cell = key_cell(corner, size, stride)
        tokens = torch.full((len(batch),), cell[0] * grid.shape[2] + cell[1], device=pixels.device)
        valid = grid.flatten(1)
        clean_maps = attention_maps(detector, pixels, mask, tokens, valid)
        initial = torch.stack([initial_patch(size, seed, image_ids[i]) for i in batch]).to(pixels.device)
        result = attack(pixels, mask, torch.tensor([corner] * len(batch), device=pixels.device), tokens, valid, initial)
        clean_mean, patched_mean = image_mean(clean_maps, valid), image_mean(result.attention_maps, valid)
        for k, i in enumerate(batch):
            per_image["patch"][i] = result.patch[k].cpu()
            per_image["snapshots"][i] = {t: patch[k].cpu() for t, patch in result.snapshots.items()}
            per_image["before"][i], per_image["after"][i] = clean_mean[k].cpu(), patched_mean[k].cpu()
            per_image["maps"][i] = (clean_maps[k].view(grid.shape[1:]).cpu(),
                                    result.attention_maps[k].view(grid.shape[1:]).cpu())
        losses.append((result.loss_curve, len(batch)))
        attentions.append((result.attention_curve, len(batch)))
    kept = per_image["maps"][:keep]
    snapshots = {t: torch.stack([s[t] for s in per_image["snapshots"]]) for t in per_image["snapshots"][0]}
    return DetrRunResult(torch.stack(per_image["patch"]), padded_mean(losses),
                         padded_mean(attentions), torch.stack(per_image["before"]), torch.stack(per_image["after"]),
                         cell, stride, [m[0] for m in kept], [m[1] for m in kept], snapshots)


def patch_box_at_original(corner: tuple[int, int], size: int, working: tuple[int, int],
                          original: tuple[int, int]) -> list[float]:
    """The patch box [x, y, w, h] in the original image's pixels (where detections and ground truth live)."""
    scale_y, scale_x = original[0] / working[0], original[1] / working[1]
    return [corner[1] * scale_x, corner[0] * scale_y, size * scale_x, size * scale_y]

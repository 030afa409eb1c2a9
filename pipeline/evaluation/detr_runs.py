"""Running the DETR patch attack over an evaluation set (seed 003 §5.3, methods.md P4): where each patch goes,
which encoder token lies under it, and the patched images, curves and attention of every batch."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from tqdm import tqdm

from pipeline.attacks.detr_patch import DetrPatchAttack, DetrRun, attention_to_key, image_mean
from pipeline.attacks.patch import apply_patch
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


@dataclass
class DetrBatchResult:
    """One batch of the stage's attack, its unit of resume and of torchrun: per item (image, run), the image's index,
    the run's label, the final patch, the snapshots (one tensor over `snapshot_steps`), the attention on the patch
    key before and after and its maps; per iteration and item, the objective and the attention on the key."""

    images: list[int]
    labels: list[str]
    patches: list[torch.Tensor]
    snapshot_steps: list[int]
    snapshots: list[torch.Tensor]
    values: torch.Tensor
    attention: torch.Tensor
    before: torch.Tensor
    after: torch.Tensor
    maps_before: list[torch.Tensor]
    maps_after: list[torch.Tensor]
    key_cells: list[list[int]]
    stride: int


class DetrAttackPlan:
    """Every run of `runs` on every image of `inputs`, as batches of items (image, run) of one working size: image by
    image, an image's runs side by side, so a batch fills up with the runs of one image however few images share its
    size (DETR's convolutions see padding, so images of different sizes never share a batch). The random control
    (no iterations) has batches of its own. Each image's initial patch is drawn from (`seed`, its image id, the
    side), so no result depends on the batching, and `assemble` regroups the items by run."""

    def __init__(self, attack: DetrPatchAttack, runs: list[DetrRun], inputs: list[torch.Tensor], image_ids: list[int],
                 centre: tuple[int, int], batch_size: int, seed: int = 0):
        for size in {run.size for run in runs}:
            check_fits(patch_corner(centre, size), size, inputs, image_ids)
        self.control = DetrPatchAttack(attack.detector, 0, snapshot_steps=tuple(attack.snapshot_steps),
                                       amp=attack.amp)
        self.attack, self.runs, self.inputs, self.image_ids = attack, runs, inputs, image_ids
        self.centre, self.seed = centre, seed
        self.batches: list[list[tuple[int, DetrRun]]] = []
        for optimised in (True, False):
            items = [(i, run) for i in range(len(inputs)) for run in runs if run.optimised == optimised]
            self.batches += [[items[k] for k in batch]
                             for batch in same_size_batches([inputs[i].shape[-2:] for i, _ in items], batch_size)]

    def cost(self, batch: int) -> float:
        """The batch's relative cost: its items times the iterations they run."""
        return len(self.batches[batch]) * (self.attack.steps if self.batches[batch][0][1].optimised else 0)

    def attack_batch(self, batch: int) -> DetrBatchResult:
        items = self.batches[batch]
        attack = self.attack if items[0][1].optimised else self.control
        detector = attack.detector
        pixels, mask = detector.pad([self.inputs[i] for i, _ in items])
        grid = detector.token_grid(pixels, mask)                                          # B×h×w
        stride = backbone_stride(pixels, grid.shape[1])
        corners = [patch_corner(self.centre, run.size) for _, run in items]
        cells = [key_cell(corner, run.size, stride) for corner, (_, run) in zip(corners, items)]
        tokens = torch.tensor([row * grid.shape[2] + col for row, col in cells], device=pixels.device)
        valid = grid.flatten(1)
        clean_maps = attention_maps(detector, pixels, mask, tokens, valid)
        initial = [initial_patch(run.size, self.seed, self.image_ids[i]) for i, run in items]
        result = attack(pixels, mask, [run for _, run in items], torch.tensor(corners, device=pixels.device), tokens,
                        valid, initial)
        steps = sorted(result.snapshots)
        return DetrBatchResult(
            [i for i, _ in items], [run.label for _, run in items], [p.cpu() for p in result.patches], steps,
            [torch.stack([result.snapshots[t][k] for t in steps]).cpu() if steps else torch.empty(0)
             for k in range(len(items))],
            result.values.cpu(), result.attention.cpu(), image_mean(clean_maps, valid).cpu(), result.attention[-1].cpu(),
            [m.view(grid.shape[1:]).cpu() for m in clean_maps], [m.view(grid.shape[1:]).cpu() for m in result.attention_maps],
            [list(cell) for cell in cells], stride)

    def assemble(self, batches: list[DetrBatchResult], keep: int) -> dict[str, DetrRunResult]:
        """The batches' items regrouped into one result per run (images in the order of `inputs`); the attention maps
        of the first `keep` images."""
        found: dict[str, list[tuple[int, DetrBatchResult, int]]] = {run.label: [] for run in self.runs}
        for batch in batches:
            for k, (image, label) in enumerate(zip(batch.images, batch.labels)):
                found[label].append((image, batch, k))
        results = {}
        for label, entries in found.items():
            entries.sort(key=lambda entry: entry[0])
            values = torch.stack([batch.values[:, k] for _, batch, k in entries], 1)             # T×N
            attention = torch.stack([batch.attention[:, k] for _, batch, k in entries], 1)
            first, k0 = entries[0][1], entries[0][2]
            results[label] = DetrRunResult(
                torch.stack([batch.patches[k] for _, batch, k in entries]), values.mean(1).tolist(),
                attention.mean(1).tolist(), torch.stack([batch.before[k] for _, batch, k in entries]),
                torch.stack([batch.after[k] for _, batch, k in entries]), tuple(first.key_cells[k0]), first.stride,
                [batch.maps_before[k] for _, batch, k in entries[:keep]],
                [batch.maps_after[k] for _, batch, k in entries[:keep]],
                {t: torch.stack([batch.snapshots[k][j] for _, batch, k in entries])
                 for j, t in enumerate(first.snapshot_steps)})
        return results

    def run(self, keep: int, label: str = "attack") -> dict[str, DetrRunResult]:
        """Every batch in this process, no store (tests, benchmarks)."""
        return self.assemble([self.attack_batch(k) for k in tqdm(range(len(self.batches)), desc=label, leave=False)],
                             keep)


def patch_box_at_original(corner: tuple[int, int], size: int, working: tuple[int, int],
                          original: tuple[int, int]) -> list[float]:
    """The patch box [x, y, w, h] in the original image's pixels (where detections and ground truth live)."""
    scale_y, scale_x = original[0] / working[0], original[1] / working[1]
    return [corner[1] * scale_x, corner[0] * scale_y, size * scale_x, size * scale_y]

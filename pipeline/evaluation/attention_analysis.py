"""The attention analysis of seed 002 §3 (Tables 1–3) on our data, with foreground masks as ground truth.

On the images a model classifies correctly, an attack splits them into I_succeed and I_fail.
- Table 1: share of each group and mean IoU(Att(x), GT), Att(x) = the |GT| highest pixels of the
  upsampled clean Grad-CAM (the paper's image-specific κ that gives Att and GT the same area).
- Table 2: among images with that IoU below a threshold (0.5), the share of each group and its mean
  clean top-1 confidence.
- Table 3: mean IoU between the clean and the adversarial attention when each keeps its `n` highest
  cells of the raw CAM grid, for n in `cells` (5/10/20/30 on the paper's 8×8 grid).
An all-zero CAM (ReLU kills every cell) has no highest pixels: its IoUs are undefined (NaN per sample,
left out of the means) and Table 1 counts such images per group (`empty_cam_share`), so a model whose
Grad-CAM vanished (e.g. AAD's preservation term met by g ≡ 0) is not mistaken for one that looks elsewhere.
"""

from __future__ import annotations

import torch

from pipeline.attention.gradcam import upsample

GROUPS = ("succeed", "fail")


def iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample IoU of two B×P boolean masks (1 when both are empty)."""
    inter = (a & b).sum(1).float()
    union = (a | b).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def top_k(scores: torch.Tensor, k: torch.Tensor | int) -> torch.Tensor:
    """B×P boolean: each sample's k highest scores (ties by position); k per sample or shared."""
    ranks = scores.argsort(dim=1, descending=True, stable=True).argsort(dim=1)
    k = torch.as_tensor(k, device=scores.device).view(-1, 1)
    return ranks < k


def per_sample(clean_cam: torch.Tensor, adversarial_cam: torch.Tensor, foreground: torch.Tensor,
               cells: list[int]) -> dict[str, torch.Tensor]:
    """iou_gt (Table 1) and iou_cells_<n> (Table 3) for every image; CAMs B×h×w, foreground B×1×H×W."""
    truth = foreground.flatten(1).bool()
    clean_grid, adversarial_grid = clean_cam.flatten(1), adversarial_cam.flatten(1)
    clean_empty, adversarial_empty = (grid.amax(1) <= 0 for grid in (clean_grid, adversarial_grid))
    attention = top_k(upsample(clean_cam, foreground.shape[-2:]).flatten(1), truth.sum(1))
    records = {"clean_cam_empty": clean_empty.float(), "iou_gt": undefined_where(iou(attention, truth), clean_empty)}
    for n in cells:
        if n > clean_grid.shape[1]:
            raise ValueError(f"cells: {n} exceeds the {clean_grid.shape[1]} cells of the CAM grid")
        records[f"iou_cells_{n}"] = undefined_where(iou(top_k(clean_grid, n), top_k(adversarial_grid, n)),
                                                    clean_empty | adversarial_empty)
    return records


def undefined_where(values: torch.Tensor, undefined: torch.Tensor) -> torch.Tensor:
    return torch.where(undefined, torch.full_like(values, float("nan")), values)


def mean(values: torch.Tensor) -> float | None:
    """The mean of the defined (non-NaN) values; None when there are none."""
    values = values.float()
    values = values[~values.isnan()]
    return values.mean().item() if len(values) else None


def summarise(records: dict[str, torch.Tensor], success: torch.Tensor, confidence: torch.Tensor,
              iou_threshold: float, cells: list[int]) -> dict:
    """Tables 1–3 as nested dicts: {table: {group: {...}}}; means of empty groups are None."""
    members = {"succeed": success, "fail": ~success}
    low = records["iou_gt"] < iou_threshold
    return {
        "table1": {g: {"share": mean(m), "count": int(m.sum()), "mean_iou_gt": mean(records["iou_gt"][m]),
                       "empty_cam_share": mean(records["clean_cam_empty"][m])} for g, m in members.items()},
        "table2": {g: {"share": mean(m[low]), "count": int((m & low).sum()), "mean_confidence": mean(confidence[m & low])}
                   for g, m in members.items()},
        "table3": {g: {f"cells_{n}": mean(records[f"iou_cells_{n}"][m]) for n in cells} for g, m in members.items()},
    }

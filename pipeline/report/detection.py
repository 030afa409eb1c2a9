"""The DETR patch-attack table: COCO mAP per detector, patch side and objective in the layout of seed 003's Table 4."""

from __future__ import annotations

from pipeline.config import AttackDetr
from pipeline.report.patches import objective_label
from pipeline.report.tables import Cell, Table


def detection_table(cfg: AttackDetr, names: list[str], metrics: dict[str, dict]) -> tuple[Table, dict]:
    """A row per detector and patch side: mAP@[.5:.95] in % without a patch, clean with the patch box's exclusion
    rule, then under each objective (the same rule); the headline numbers for metrics.json."""
    table = Table(f"Attention-Fool on DETR (seed 003, Table 4 layout): mAP@[.5:.95] in %, patch centred at "
                  f"{tuple(cfg.centre)}, {cfg.steps} {cfg.optimiser} sign-PGD steps",
                  ["detector", "patch", "key cell", "clean (all boxes)", "clean", *map(objective_label, cfg.objectives)])
    headline = {}
    for name in names:
        result = metrics[name]
        headline[name] = {"clean": result["clean"]["AP"]}
        for patch, runs in result["patches"].items():
            cell = runs[cfg.objectives[0]]["key_cell"]
            table.rows.append([Cell(name), Cell(patch), Cell(f"({cell[0]}, {cell[1]})"),
                               Cell(f"{100 * result['clean']['AP']:.2f}"), Cell(f"{100 * runs['clean']['AP']:.2f}"),
                               *(Cell(f"{100 * runs[o]['AP']:.2f}") for o in cfg.objectives)])
            headline[name][patch] = {"clean": runs["clean"]["AP"], **{o: runs[o]["AP"] for o in cfg.objectives}}
    counts = sorted({metrics[name]["num_images"] for name in names})
    table.notes.append(f"val2017 images per detector: {', '.join(map(str, counts))}; clean and patched mAP ignore "
                       "detections and ground-truth boxes with more than half of their area inside the patch box "
                       "(the seed's rule); all 12 COCOeval numbers in data/attack_detr/<name>/metrics.json.")
    return table, headline

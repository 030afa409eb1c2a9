"""The DETR patch-attack table: COCO mAP per detector, patch side and objective in the layout of seed 003's Table 4."""

from __future__ import annotations

from pipeline.config import AttackDetr
from pipeline.report.patches import objective_label
from pipeline.report.tables import Cell, Table, paired_text
from pipeline.report.verdicts import direction_verdict, negated

COMPARED = "ce+kq - ce"          # the seed's claim: the attention term makes the patch stronger than L_ce alone


def comparison_cells(paired: dict) -> list[Cell]:
    """The paired per-image AP difference L_ce + L_kq − L_ce and the verdict on the seed's claim that the attention
    term makes the patch stronger (a lower AP: the claim holds when the difference is below zero)."""
    verdict = direction_verdict(negated(paired))
    return [Cell(paired_text(paired)), Cell(verdict, fail=verdict.startswith("not reproduced"))]


def detection_table(cfg: AttackDetr, names: list[str], metrics: dict[str, dict]) -> tuple[Table, dict]:
    """A row per detector and patch side: mAP@[.5:.95] in % without a patch, clean with the patch box's exclusion
    rule, then under each objective (the same rule), the paired per-image difference L_ce + L_kq − L_ce and the
    detections the rule removed per run; the headline numbers for metrics.json."""
    compared = "ce+kq" in cfg.objectives and "ce" in cfg.objectives
    table = Table(f"Attention-Fool on DETR (seed 003, Table 4 layout): mAP@[.5:.95] in %, patch centred at "
                  f"{tuple(cfg.centre)}, {cfg.steps} {cfg.optimiser} sign-PGD steps",
                  ["detector", "attention", "patch", "key cell", "clean (all boxes)", "clean",
                   *map(objective_label, cfg.objectives),
                   *(["L_ce+L_kq − L_ce per image [95%]", "verdict"] if compared else []), "detections removed"])
    headline = {}
    for name in names:
        result = metrics[name]
        headline[name] = {"clean": result["clean"]["AP"]}
        for patch, runs in result["patches"].items():
            cell = runs[cfg.objectives[0]]["key_cell"]
            removed = " / ".join(str(runs[o]["excluded"]["detections"]) for o in ("clean", *cfg.objectives))
            table.rows.append([Cell(name), Cell(result["attention_layer"]), Cell(patch),
                               Cell(f"({cell[0]}, {cell[1]})"), Cell(f"{100 * result['clean']['AP']:.2f}"),
                               Cell(f"{100 * runs['clean']['AP']:.2f}"),
                               *(Cell(f"{100 * runs[o]['AP']:.2f}") for o in cfg.objectives),
                               *(comparison_cells(runs["paired"][COMPARED]) if compared else []), Cell(removed)])
            headline[name][patch] = {"clean": runs["clean"]["AP"], **{o: runs[o]["AP"] for o in cfg.objectives},
                                     **({COMPARED: runs["paired"][COMPARED]} if compared else {})}
    counts = sorted({metrics[name]["num_images"] for name in names})
    table.notes.append(f"val images per detector: {', '.join(map(str, counts))}; clean and patched mAP ignore "
                       "detections and ground-truth boxes with more than half of their area inside the patch box "
                       "(the seed's rule; 'detections removed' counts them for clean, then each objective); the "
                       "per-image column is the mean difference of each image's AP@[.5:.95] in points with its paired "
                       "bootstrap interval; all 12 COCOeval numbers in data/attack_detr/<name>/metrics.json.")
    return table, headline

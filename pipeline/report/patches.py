"""The patch-attack table: robust accuracy per target and objective in the layout of seed 003's Table 3."""

from __future__ import annotations

from pipeline.config import AttackVit
from pipeline.evaluation.intervals import paired_bootstrap
from pipeline.report.tables import Cell, Table, paired_text
from pipeline.report.verdicts import direction_verdict

OBJECTIVE_LABELS = {"random": "random patch", "ce": "L_ce", "ce+kq": "L_ce+L_kq", "ce+kq_cls": "L_ce+L_kq*",
                    "kq_cls": "L_kq*", "kq": "L_kq", "ce+patch_fool": "L_ce+Patch-Fool", "patch_fool": "Patch-Fool"}


def objective_label(objective: str) -> str:
    return OBJECTIVE_LABELS.get(objective, objective)


def patch_tables(cfg: AttackVit, metrics: dict[str, dict]) -> tuple[list[Table], dict]:
    """One table per placement: a row per `cfg.targets` entry, robust accuracy (%) for each optimiser ×
    objective (— where a run does not apply: attention objectives on a CNN)."""
    tables, headline = [], {}
    for placement in cfg.placements:
        runs = [(o, j) for o in cfg.optimisers for j in cfg.objectives]
        where = f"cell {tuple(cfg.cell)}" if placement == "fixed" else "a seeded random token cell per image"
        table = Table(f"Attention-Fool patches (seed 003, Table 3 layout): robust accuracy in %, patch at {where}",
                      ["model", "patch", "clean", *(f"{'PGD' if o == 'plain' else 'momentum'}-{cfg.steps} "
                                                      f"{objective_label(j)}" for o, j in runs)])
        half_widths = []
        for name in cfg.targets:
            result = metrics[name]
            done = result["runs"].get(placement, {})
            cells = []
            for optimiser, objective in runs:
                summary = done.get(optimiser, {}).get(objective, {}).get("robust")
                cells.append(Cell("—" if summary is None else f"{100 * summary['accuracy']:.1f}"))
                if summary is not None:
                    half_widths.append((summary["ci95_high"] - summary["ci95_low"]) / 2)
                    headline.setdefault(name, {}).setdefault(placement, {}).setdefault(optimiser, {})[objective] = \
                        summary["accuracy"]
            headline.setdefault(name, {})["clean"] = result["clean"]["accuracy"]
            table.rows.append([Cell(name), Cell(f"{result['patch_px']} px ({100 * result['patch_area_share']:.2f}%)"),
                               Cell(f"{100 * result['clean']['accuracy']:.1f}"), *cells])
        counts = sorted({metrics[name]["num_images"] for name in cfg.targets})
        table.notes.append(f"images per model: {', '.join(map(str, counts))}; widest 95% Wilson interval "
                           f"±{100 * max(half_widths, default=0):.1f} points (data/attack_vit/<name>/metrics.json).")
        tables.append(table)
    return tables, headline


def objective_comparison_table(cfg: AttackVit, robust: dict[str, dict[str, dict[int, int]]]) -> Table:
    """Seed 003's claim per target, placement and optimiser: each attention objective against L_ce on the same images,
    as robust accuracy under L_ce minus under the objective (points; above zero: the objective is the stronger
    attack) with its 95% paired-bootstrap interval and the verdict. `robust`: target → run
    ("placement/optimiser/objective") → image index → 1 if the patched image is still classified correctly."""
    table = Table("Verdicts (seed 003, ViT): each attention objective against L_ce on the same images",
                  ["model", "placement", "optimiser", "objective", "L_ce − objective, points [95%]", "images",
                   "verdict"])
    for name, runs in robust.items():
        for placement in cfg.placements:
            for optimiser in cfg.optimisers:
                base = runs.get(f"{placement}/{optimiser}/ce")
                for objective in cfg.objectives:
                    other = runs.get(f"{placement}/{optimiser}/{objective}")
                    if base is None or other is None or objective in ("ce", "random"):
                        continue
                    indices = sorted(set(base) & set(other))
                    difference = paired_bootstrap([base[i] for i in indices], [other[i] for i in indices])
                    verdict = direction_verdict(difference)
                    table.rows.append([Cell(name), Cell(placement), Cell(optimiser), Cell(objective_label(objective)),
                                       Cell(paired_text(difference)), Cell(str(difference["n"])),
                                       Cell(verdict, fail=verdict.startswith("not reproduced"))])
    table.notes.append("Robust: the patched image is still classified correctly (an image misclassified when clean "
                       "counts as broken); data/attack_vit/<name>/per_sample.csv.")
    return table


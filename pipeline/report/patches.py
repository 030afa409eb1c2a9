"""The patch-attack table: robust accuracy per target and objective in the layout of seed 003's Table 3."""

from __future__ import annotations

from pipeline.config import AttackVit
from pipeline.report.tables import Cell, Table

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

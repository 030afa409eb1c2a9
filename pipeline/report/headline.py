"""The headline numbers: one per paper claim, short stable keys, the only metrics `dvc exp show` lists.

From the report's details (data/report/details.json):
- mask_effect.<masked classifier>: worst-case accuracy minus its unmasked twin's, paired on the same images (P1);
- vs_madry.<defense>: worst-case accuracy minus the Madry row's, paired (seed 002 Table 6);
- claim.<n>: the n-th `report.claims` difference (seeds 001, 002), its verdict in the report;
- vit.<target>.<objective>: accuracy under the patch, first placement, last optimiser (seed 003 Table 3), and .clean;
- detr.<detector>.<objective>: mAP under the patch, first patch size (seed 003 Table 4), and .clean;
- audit.failed / audit.classifiers: how many classifiers fail the gradient-masking audit, of how many.
"""

from __future__ import annotations


def _rounded(value: float) -> float:
    return round(float(value), 4)


def vit_headline(per_target: dict, placement: str, optimiser: str) -> dict:
    return {name: {"clean": _rounded(runs["clean"]),
                   **{objective: _rounded(accuracy) for objective, accuracy in runs[placement][optimiser].items()}}
            for name, runs in per_target.items()}


def detr_headline(per_detector: dict) -> dict:
    headline = {}
    for name, results in per_detector.items():
        size = next(key for key in results if key != "clean")
        headline[name] = {"clean": _rounded(results["clean"]),
                          **{objective: _rounded(value) for objective, value in results[size].items()
                             if isinstance(value, float) and objective != "clean"}}
    return headline


def headline(details: dict, placement: str, optimiser: str) -> dict:
    """The headline dict of the report's `details` (its metrics.json content before this split)."""
    defenses = {name: row["vs_madry_worst_case"]["mean"] for name, row in details["defenses"].items()
                if "vs_madry_worst_case" in row}
    audits = [values["audit_passed"] for values in details["classifiers"].values()]
    return {
        "mask_effect": {name: _rounded(row["worst_case_paired"]["mean"]) for name, row in details["mask_effect"].items()},
        "vs_madry": {name: _rounded(value) for name, value in defenses.items()},
        "claim": {str(i + 1): None if claim["mean"] is None else _rounded(claim["mean"])
                  for i, claim in enumerate(details["claims"])},
        "vit": vit_headline(details["patches"], placement, optimiser),
        "detr": detr_headline(details["detectors"]),
        "audit": {"failed": audits.count(False), "classifiers": len(audits)},
    }


def column_count(metrics: dict) -> int:
    """How many columns `dvc exp show` makes of a metrics dict (one per leaf)."""
    return sum(column_count(value) if isinstance(value, dict) else 1 for value in metrics.values())

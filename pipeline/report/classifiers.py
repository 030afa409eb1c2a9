"""The classifier part of the report (methods.md P1): accuracy per classifier with its audit, and the
paper's question, "do foreground masks improve robustness?", as paired differences to the unmasked twin.

Inputs are the `classifiers:` entries and each `attack_classifier@<name>` metrics.json; the accuracies
compared are at one ε (`eps_key`, e.g. eps_8_255) for one suite attack and the per-sample worst case.
"""

from __future__ import annotations

import json

from pipeline.config import Classifier
from pipeline.report.tables import Cell, Table, percent

WORST = "worst_case"


def _results(metrics: dict, name: str, eps_key: str, attack: str) -> dict:
    """{clean, attack, worst_case} accuracy summaries of classifier `name`; names what is missing."""
    at_eps = metrics.get(eps_key)
    if at_eps is None:
        raise ValueError(f"data/attack_classifier/{name}/metrics.json: no results at {eps_key} (has {sorted(metrics)})")
    if attack not in at_eps:
        raise ValueError(f"data/attack_classifier/{name}/metrics.json: no attack {attack!r} at {eps_key} "
                         f"(has {sorted(at_eps)}); set report.classifier_attack to one of them")
    return {"clean": metrics["clean"], attack: at_eps[attack], WORST: at_eps[WORST]}


def _audit_cell(audit: dict) -> Cell:
    failed = [f"{check} {result['value']:.3g} > {result['limit']:.3g}" for check, result in audit.items()
              if isinstance(result, dict) and not result["pass"]]
    return Cell("; ".join(failed), fail=True) if failed else Cell("pass")


def _mask_label(entry: Classifier) -> str:
    return entry.mask if entry.mask == "none" or entry.remask_at_test else f"{entry.mask} (not re-masked)"


def accuracy_table(entries: dict[str, Classifier], metrics: dict[str, dict], eps_key: str,
                   attack: str) -> tuple[Table, dict]:
    """One row per classifier; the headline dict holds each one's accuracies and audit verdict."""
    table = Table(f"Classifiers: accuracy in % [95% Wilson interval] at {eps_key}",
                  ["classifier", "dataset", "recipe", "mask", "clean", attack, "worst case", "audit"])
    headline = {}
    for name, entry in entries.items():
        results = _results(metrics[name], name, eps_key, attack)
        table.rows.append([Cell(name), Cell(entry.dataset), Cell(entry.recipe), Cell(_mask_label(entry)),
                           *(Cell(percent(results[k])) for k in ("clean", attack, WORST)),
                           _audit_cell(metrics[name]["audit"])])
        headline[name] = {**{k: v["accuracy"] for k, v in results.items()}, "audit_passed": metrics[name]["audit"]["passed"]}
    counts = sorted({metrics[name]["num_images"] for name in entries})
    table.notes.append(f"worst case: a sample counts as robust only if no attack of the suite broke it; "
                       f"images per classifier: {', '.join(map(str, counts))}.")
    return table, headline


def separated(a: dict, b: dict) -> bool:
    """Do two accuracy summaries' 95% intervals not overlap?"""
    return a["ci95_low"] > b["ci95_high"] or b["ci95_low"] > a["ci95_high"]


def unmasked_twins(entries: dict[str, Classifier]) -> dict[str, str]:
    """masked classifier name → the name of the `mask: none` entry identical to it in every other key."""
    def setup(entry: Classifier) -> str:
        return json.dumps(entry.model_dump(exclude={"mask"}), sort_keys=True)

    unmasked = {}
    for name, entry in sorted(entries.items()):
        if entry.mask == "none":
            unmasked.setdefault(setup(entry), name)
    return {name: unmasked[setup(entry)] for name, entry in entries.items()
            if entry.mask != "none" and setup(entry) in unmasked}


def mask_effect_table(entries: dict[str, Classifier], metrics: dict[str, dict], eps_key: str,
                      attack: str) -> tuple[Table, dict]:
    """Masked minus unmasked accuracy (points) per pair; 'separated' = the 95% intervals do not overlap."""
    table = Table(f"Do foreground masks improve robustness? Masked minus unmasked twin, points, at {eps_key}",
                  ["classifier", "unmasked twin", "Δ clean", f"Δ {attack}", "Δ worst case", "worst case separated"])
    headline = {}
    for name, twin in unmasked_twins(entries).items():
        mine, theirs = (_results(metrics[n], n, eps_key, attack) for n in (name, twin))
        deltas = {k: mine[k]["accuracy"] - theirs[k]["accuracy"] for k in mine}
        apart = separated(mine[WORST], theirs[WORST])
        table.rows.append([Cell(name), Cell(twin), *(Cell(f"{100 * deltas[k]:+.1f}") for k in mine),
                           Cell("yes" if apart else "no")])
        headline[name] = {"twin": twin, **{f"delta_{k}": v for k, v in deltas.items()}, "worst_case_separated": apart}
    if not table.rows:
        table.notes.append("No classifier has an unmasked twin (same entry with mask: none).")
    return table, headline

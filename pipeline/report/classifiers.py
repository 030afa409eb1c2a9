"""The classifier part of the report (methods.md P1): accuracy per classifier with its audit, and the
paper's question, "do foreground masks improve robustness?", as paired differences to the unmasked twin.

Inputs are the `classifiers:` entries and each `attack_classifier@<name>` metrics.json; the accuracies
compared are at one ε (`eps_key`, e.g. eps_8_255) for one suite attack and the per-sample worst case.
"""

from __future__ import annotations

import json

from pipeline.config import Classifier, SuiteEntry
from pipeline.evaluation.intervals import paired_bootstrap
from pipeline.report.tables import Cell, Table, paired_text, percent
from pipeline.report.verdicts import direction_verdict

WORST = "worst_case"


def _results(metrics: dict, name: str, eps_key: str, attacks: list[str]) -> dict:
    """{clean, *attacks, worst_case} accuracy summaries of classifier `name`; names what is missing."""
    at_eps = metrics.get(eps_key)
    if at_eps is None:
        raise ValueError(f"data/attack_classifier/{name}/metrics.json: no results at {eps_key} (has {sorted(metrics)})")
    for attack in attacks:
        if attack not in at_eps:
            raise ValueError(f"data/attack_classifier/{name}/metrics.json: no attack {attack!r} at {eps_key} "
                             f"(has {sorted(at_eps)}); rerun `dvc repro` after changing the suite")
    return {"clean": metrics["clean"], **{attack: at_eps[attack] for attack in attacks}, WORST: at_eps[WORST]}


def _audit_value(result: dict) -> str:
    """A failed check's number: 'n of N images' for the checks on shares (audit.share_check), else the value."""
    return f"{result['count']} of {result['images']} images" if "count" in result else f"{result['value']:.3g}"


def _audit_cell(audit: dict) -> Cell:
    failed = [f"{check} {_audit_value(result)} > {result['limit']:.3g}" for check, result in audit.items()
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
        results = _results(metrics[name], name, eps_key, [attack])
        table.rows.append([Cell(name), Cell(entry.dataset), Cell(entry.recipe), Cell(_mask_label(entry)),
                           *(Cell(percent(results[k])) for k in ("clean", attack, WORST)),
                           _audit_cell(metrics[name]["audit"])])
        headline[name] = {**{k: v["accuracy"] for k, v in results.items()}, "audit_passed": metrics[name]["audit"]["passed"]}
    counts = sorted({metrics[name]["num_images"] for name in entries})
    table.notes.append(f"worst case: a sample counts as robust only if no attack of the suite broke it; "
                       f"images per classifier: {', '.join(map(str, counts))}.")
    return table, headline


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


def mask_effect_table(entries: dict[str, Classifier], metrics: dict[str, dict], eps_key: str, attack: str,
                      robust: dict[str, dict[int, int]]) -> tuple[Table, dict]:
    """Masked minus unmasked accuracy (points) per pair; the worst case also as a paired difference on the same
    images with its 95% bootstrap interval and the verdict on "the mask raises robustness" (P1). `robust`: per
    classifier, image index → 1 if no attack of the suite broke it."""
    table = Table(f"Do foreground masks improve robustness? Masked minus unmasked twin, points, at {eps_key}",
                  ["classifier", "unmasked twin", "Δ clean", f"Δ {attack}", "Δ worst case [95% paired]", "verdict"])
    headline = {}
    for name, twin in unmasked_twins(entries).items():
        mine, theirs = (_results(metrics[n], n, eps_key, [attack]) for n in (name, twin))
        deltas = {k: mine[k]["accuracy"] - theirs[k]["accuracy"] for k in mine}
        paired = paired_to_baseline(robust, name, twin)
        table.rows.append([Cell(name), Cell(twin), *(Cell(f"{100 * deltas[k]:+.1f}") for k in ("clean", attack)),
                           Cell(paired_text(paired)), Cell(direction_verdict(paired))])
        headline[name] = {"twin": twin, **{f"delta_{k}": v for k, v in deltas.items()},
                          "worst_case_paired": paired, "worst_case_separated": paired["separated"]}
    if not table.rows:
        table.notes.append("No classifier has an unmasked twin (same entry with mask: none).")
    else:
        table.notes.append("A pair whose interval includes zero is not ranked: on another machine (other weights) "
                           "such pairs have swapped order.")
    return table, headline


TABLE6_ATTACKS = ("fgsm", "pgd", "cw")


def table6_columns(suite: dict[str, SuiteEntry]) -> list[tuple[str, str]]:
    """(suite name, header) of the suite's plain L∞ FGSM, PGD-k and CW-k entries (no A3, one restart, at the
    suite's ε), in the order of seed 002's Table 6: FGSM, PGD by steps, CW by steps."""
    plain = [(name, spec) for name, spec in suite.items() if spec.attack in TABLE6_ATTACKS and spec.a3_sigma is None
             and spec.norm == "linf" and spec.eps is None and spec.restarts == 1]
    plain.sort(key=lambda item: (TABLE6_ATTACKS.index(item[1].attack), item[1].steps or 0))
    return [(name, spec.attack.upper() + (f"-{spec.steps}" if spec.steps else "")) for name, spec in plain]


def recipe_label(entry: Classifier) -> str:
    """'aad (base=alp)': the recipe with the options that tell entries of one recipe apart."""
    options = ", ".join(f"{key}={value}" for key, value in sorted(entry.options.items()))
    return f"{entry.recipe} ({options})" if options else entry.recipe


def madry_baseline(entries: dict[str, Classifier], names: list[str]) -> str | None:
    """The row every defense is compared with: the first of `names` trained with plain `madry` and no mask."""
    return next((n for n in names if entries[n].recipe == "madry" and entries[n].mask == "none"), None)


def paired_to_baseline(robust: dict[str, dict[int, int]], name: str, baseline: str) -> dict:
    """Worst-case accuracy of `name` minus the baseline's on the images both were attacked on (per-sample robust
    flags by image index; a classifier attacked on more images, `attack_images`, shares the smaller set's): the
    mean difference with its 95% paired-bootstrap interval."""
    indices = sorted(set(robust[name]) & set(robust[baseline]))
    if not indices:
        raise ValueError(f"data/attack_classifier/{name}/per_sample.csv and {baseline}'s share no image: "
                         "rerun their attack_classifier stages")
    return paired_bootstrap([robust[name][i] for i in indices], [robust[baseline][i] for i in indices])


def defense_table(entries: dict[str, Classifier], metrics: dict[str, dict], names: list[str],
                  suite: dict[str, SuiteEntry], eps_key: str,
                  robust: dict[str, dict[int, int]] | None = None) -> tuple[Table, dict]:
    """Seed 002's Table 6 on our data: one row per classifier of `names`, accuracy (%) clean and under
    FGSM, PGD-k and CW-k of the suite, plus the per-sample worst case over the whole suite; with `robust` (per
    classifier, image index → 1 if no attack of the suite broke it), each row's worst-case difference to the Madry
    row on the same images with its 95% paired-bootstrap interval."""
    columns = table6_columns(suite)
    baseline = madry_baseline(entries, names) if robust else None
    paired_header = [f"Δ worst case vs {baseline} [95%]"] if baseline else []
    table = Table(f"Defenses (seed 002, Table 6 layout): accuracy in % at {eps_key}",
                  ["classifier", "recipe", "clean", *(header for _, header in columns), "worst case", *paired_header])
    headline, half_widths = {}, []
    for name in names:
        results = _results(metrics[name], name, eps_key, [attack for attack, _ in columns])
        headline[name] = {key: summary["accuracy"] for key, summary in results.items()}
        paired = []
        if baseline and name != baseline:
            difference = headline[name]["vs_madry_worst_case"] = paired_to_baseline(robust, name, baseline)
            paired = [Cell(paired_text(difference) + (" separated" if difference["separated"] else ""))]
        elif baseline:
            paired = [Cell("(baseline)")]
        table.rows.append([Cell(name), Cell(recipe_label(entries[name])),
                           *(Cell(f"{100 * summary['accuracy']:.1f}") for summary in results.values()), *paired])
        half_widths += [(summary["ci95_high"] - summary["ci95_low"]) / 2 for summary in results.values()]
    if names:
        counts = sorted({metrics[name]["num_images"] for name in names})
        table.notes.append(f"images per classifier: {', '.join(map(str, counts))}; the widest 95% Wilson interval "
                           f"here is ±{100 * max(half_widths):.1f} points (all intervals: "
                           f"data/attack_classifier/<name>/metrics.json).")
    if baseline:
        table.notes.append(f"Δ worst case: the classifier's worst-case accuracy minus {baseline}'s on the same images, "
                           "in points, with the 95% interval of a paired bootstrap over the images; 'separated' when "
                           "it excludes zero.")
    return table, headline

"""Stage `report`: the headline numbers of every stage in one place (methods.md, "Report").

Writes `data/report/`: metrics.json (the headline numbers, pipeline/report/headline.py: the only metrics
`dvc exp show` lists), details.json (per classifier: clean, `report.classifier_attack` and worst-case
accuracy with the audit verdict; per masked classifier: the difference to its unmasked twin; per
`report.defense_table` classifier: clean, FGSM, PGD-k, CW-k and worst-case accuracy, seed 002 Table 6, and the
worst-case difference to the Madry row on the same images with its paired-bootstrap interval;
per `attack_vit` target: clean and patched accuracy per optimiser and objective, seed 003 Table 3; per
`train_detr` detector: mAP clean and per patch side and objective, seed 003 Table 4; per `report.claims` entry: the
paired worst-case difference and its verdict), report.md with figures/ beside it, report.html (self-contained, audit
failures in red) and plots/classifier_accuracy.csv. The report has one part per seed paper (pipeline/report/papers.py):
its claim, its own numbers, this run's tables in its layout, the verdicts and the stages' pictures beside them
(pipeline/report/pictures.py); a provenance footer ends it.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import subprocess
from pathlib import Path

import torch
import yaml

from pipeline.evaluation.suite import eps_label
from pipeline.io.atomic import csv_bytes, write_bytes, write_json
from pipeline.report.claims import claim_results, claims_table
from pipeline.report.classifiers import WORST, accuracy_table, defense_table, mask_effect_table
from pipeline.report.detection import detection_table
from pipeline.report.headline import headline
from pipeline.report.papers import P1, PAPERS, SEED_001, SEED_002, SEED_003
from pipeline.report.patches import objective_comparison_table, patch_tables
from pipeline.report.pictures import classifier_pictures, detector_pictures, mask_pictures, patch_pictures
from pipeline.report.provenance import provenance_table
from pipeline.report.tables import Figure, Heading, Table, render_html, render_markdown
from pipeline.report.training_figure import PANELS, read_curve, training_curves_png
from stages.common import DATA, log, run_stage, stage_args

TITLE = "attnrobust report"
OVERVIEW = ("Every classifier's clean, attacked and worst-case accuracy with its 95% Wilson interval and the "
            "gradient-masking audit; then one part per seed paper: its claim, its own numbers, this run's tables in "
            "its layout, the verdicts (a paired difference on the same images with its 95% interval; 'reproduced "
            "in direction' only when the interval excludes zero on the claimed side) and the pictures.")
PROFILES = {"tiny": Path("configs/tiny.yaml"), "paper": Path("configs/paper.yaml")}


def read_metrics(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"{path}: missing; run `dvc repro` (the stage that writes it has not run)") from None
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{path}: not valid JSON ({exc})") from None


def robust_flags(name: str, eps_key: str) -> dict[int, int]:
    """Image index → 1 if no attack of the suite broke `name` at `eps_key` (its per_sample.csv)."""
    path = DATA / "attack_classifier" / name / "per_sample.csv"
    with path.open() as table:
        rows = list(csv.DictReader(table))
    column = f"{eps_key}/{WORST}"
    if not rows or column not in rows[0]:
        raise SystemExit(f"{path}: no column {column!r}; rerun `dvc repro`")
    return {int(row["index"]): 1 - int(row[column]) for row in rows}


def attention_values(name: str, measure: str) -> dict[int, float]:
    """Image index → `measure` (an IoU column of analyze_attention's per_sample.csv) where it is defined."""
    path = DATA / "analyze_attention" / name / "per_sample.csv"
    with path.open() as table:
        rows = list(csv.DictReader(table))
    if rows and measure not in rows[0]:
        raise SystemExit(f"{path}: no column {measure!r} (has {sorted(rows[0])}); check report.claims and "
                         "analyze_attention.cells")
    return {int(float(row["index"])): float(row[measure]) for row in rows if row[measure] not in ("", "nan")}


def defense_curves(params) -> Figure | None:
    """All `report.defense_table` classifiers' per-epoch validation curves on one chart."""
    names = params.report.defense_table
    if not names:
        return None
    curves = {name: {metric: read_curve(DATA / "train_classifier" / name / "plots" / "metrics" / f"{metric}.tsv")
                     for metric, _ in PANELS} for name in names}
    warmups = {params.classifiers[name].warmup_epochs for name in names if params.classifiers[name].recipe != "natural"}
    figure = training_curves_png(curves, warmups.pop() if len(warmups) == 1 else 0)
    return Figure("Defenses: training curves", "defense_curves.png", figure,
                  "Clean accuracy on the whole validation split and PGD accuracy (the training adversary) on its "
                  "seeded subset after every epoch; every recipe continues from the same clean warm-up. The recipe "
                  "length was set against the demo budget: on the tuning hold-out, Madry's PGD accuracy was still "
                  "rising (docs/defenses.md).")


def patch_flags(name: str) -> dict[str, dict[int, int]]:
    """Run ("placement/optimiser/objective") → image index → 1 if the patched image is still classified correctly
    (attack_vit's per_sample.csv)."""
    with (DATA / "attack_vit" / name / "per_sample.csv").open() as table:
        rows = list(csv.DictReader(table))
    runs = [column.removesuffix("/success") for column in (rows[0] if rows else {}) if column.endswith("/success")]
    return {run: {int(row["index"]): 1 - int(row[f"{run}/success"]) for row in rows} for run in runs}


def mask_study_examples(params) -> list[str]:
    """The classifiers whose pictures illustrate the mask study: the first Madry-trained foreground-masked one per
    dataset."""
    firsts = {}
    for name, entry in params.classifiers.items():
        if entry.recipe == "madry" and entry.mask == "foreground":
            firsts.setdefault(entry.dataset, name)
    return list(firsts.values())


def defense_examples(params) -> list[str]:
    """The defense table's baseline and every classifier of an attention claim (AAD's Grad-CAMs)."""
    names = params.report.defense_table[:1] + [name for claim in params.report.claims if claim.measure != "worst_case"
                                               for name in (claim.better, claim.than)]
    return list(dict.fromkeys(names))


def git(*args: str) -> str | None:
    """A git command's output in the working directory, or None outside a git checkout."""
    try:
        result = subprocess.run(["git", *args], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return result.stdout


def provenance(params_file: Path) -> Table:
    """The footer: commit (with uncommitted changes counted), the closest profile and its changed keys, machine."""
    commit = git("rev-parse", "--short", "HEAD")
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!data", ":!dvc.lock")
    code = "unknown (not a git checkout)" if commit is None else commit.strip() + (
        f" with {len(changed.splitlines())} uncommitted file(s) changed" if changed else "")
    profiles = {name: yaml.safe_load(path.read_text()) for name, path in PROFILES.items() if path.exists()}
    committed = git("show", "HEAD:params.yaml")
    if committed:
        profiles["demo"] = yaml.safe_load(committed)     # last: a profile file of configs/ wins a tie
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    machine = (f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores, {gpu}; torch {torch.__version__}; "
               f"ATTNROBUST_DEVICE={os.environ.get('ATTNROBUST_DEVICE', 'auto')}")
    return provenance_table(yaml.safe_load(params_file.read_text()), profiles, code, machine)


def main() -> None:
    args, params = stage_args(__doc__.splitlines()[0], item=False)
    attack = params.report.classifier_attack
    eps_key = eps_label("linf", params.attack_classifier.eps_255[0] / 255)
    metrics = {name: read_metrics(DATA / "attack_classifier" / name / "metrics.json") for name in params.classifiers}
    try:
        accuracy, per_classifier = accuracy_table(params.classifiers, metrics, eps_key, attack)
        robust = {name: robust_flags(name, eps_key) for name in params.classifiers}
        effect, mask_effect = mask_effect_table(params.classifiers, metrics, eps_key, attack, robust)
        defenses, per_defense = defense_table(params.classifiers, metrics, params.report.defense_table,
                                              params.attack_classifier.suite, eps_key, robust)
        per_image = {"worst_case": robust}
        for claim in params.report.claims:
            if claim.measure != "worst_case":
                per_image.setdefault(claim.measure, {}).update(
                    {name: attention_values(name, claim.measure) for name in (claim.better, claim.than)})
        per_claim = claim_results(params.report.claims, per_image)
        curves = defense_curves(params)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    patched = {name: read_metrics(DATA / "attack_vit" / name / "metrics.json") for name in params.attack_vit.targets}
    patch, per_target = patch_tables(params.attack_vit, patched)
    objectives = objective_comparison_table(params.attack_vit,
                                            {name: patch_flags(name) for name in params.attack_vit.targets})
    detected = {name: read_metrics(DATA / "attack_detr" / name / "metrics.json") for name in params.train_detr}
    detection, per_detector = detection_table(params.attack_detr, list(params.train_detr), detected)

    out = DATA / "report"
    rows = [[name, *(values[k] for k in ("clean", attack, WORST))] for name, values in per_classifier.items()]
    write_bytes(out / "plots" / "classifier_accuracy.csv", csv_bytes(["classifier", "clean", attack, WORST], rows))
    datasets = sorted({entry.dataset for entry in params.classifiers.values()})
    sections = [Heading("All classifiers", [OVERVIEW]), accuracy,
                *P1.sections(), effect, *mask_pictures(DATA, datasets),
                *classifier_pictures(DATA, mask_study_examples(params)),
                *SEED_001.sections(), *([defenses] if per_defense else []), *([curves] if curves else []),
                claims_table(per_claim, eps_key, (SEED_001.key,)),
                *SEED_002.sections(), claims_table(per_claim, eps_key, (SEED_002.key,)),
                *classifier_pictures(DATA, defense_examples(params)),
                claims_table(per_claim, eps_key, others=tuple(paper.key for paper in PAPERS)),
                *SEED_003.sections(), *patch, objectives, *patch_pictures(DATA, list(params.attack_vit.targets)),
                detection, *detector_pictures(DATA, list(params.train_detr)),
                Heading("Provenance"), provenance(args.params)]
    sections = [section for section in sections if not isinstance(section, Table) or section.rows]   # none empty
    figures = [section for section in sections if isinstance(section, Figure)]
    for figure in figures:
        write_bytes(out / "figures" / figure.file, figure.png)
    write_bytes(out / "report.md", render_markdown(TITLE, sections).encode())
    write_bytes(out / "report.html", render_html(TITLE, sections).encode())
    details = {"classifiers": per_classifier, "mask_effect": mask_effect, "defenses": per_defense, "claims": per_claim,
               "patches": per_target, "detectors": per_detector}
    write_json(out / "details.json", details)
    write_json(out / "metrics.json", headline(details, params.attack_vit.placements[0], params.attack_vit.optimisers[-1]))
    for name, values in per_classifier.items():
        if not values["audit_passed"]:
            log.warning("%s: gradient-masking audit FAILED (see data/attack_classifier/%s/metrics.json)", name, name)
    log.info("report written to %s", out)


if __name__ == "__main__":
    run_stage(main)

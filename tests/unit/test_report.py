"""The report: twins found by every key but the mask, differences and interval separation, failures marked."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

from pipeline.config import Claim, Classifier, SuiteEntry
from pipeline.report.claims import claim_results, claims_table
from pipeline.report.headline import column_count, headline
from pipeline.report.classifiers import (
    accuracy_table,
    defense_table,
    mask_effect_table,
    table6_columns,
    unmasked_twins,
)
from pipeline.report.tables import Figure, render_html, render_markdown
from pipeline.report.training_figure import read_curve, training_curves_png
from tests.conftest import load_profile

EPS = "eps_8_255"


def entry(mask: str, **changes) -> Classifier:
    raw = dict(load_profile("params")["classifiers"]["gtsrb_natural_none"], mask=mask, **changes)
    return Classifier.model_validate(raw)


def summary(accuracy: float, low: float, high: float) -> dict:
    return {"accuracy": accuracy, "ci95_low": low, "ci95_high": high, "n": 300}


def metrics(clean: float, pgd: float, worst: tuple[float, float, float], audit_failures: dict | None = None) -> dict:
    audit = {"passed": not audit_failures, "zero_gradient_share": {"value": 0.0, "limit": 0.01, "pass": True},
             **(audit_failures or {})}
    return {"num_images": 300, "clean": summary(clean, clean - 0.05, clean + 0.05),
            EPS: {"pgd20": summary(pgd, pgd - 0.05, pgd + 0.05), "worst_case": summary(*worst)}, "audit": audit}


def test_twins_differ_only_in_the_mask():
    entries = {"none": entry("none"), "fg": entry("foreground"), "rand": entry("random"),
               "fg_long": entry("foreground", epochs=30), "fg_madry": entry("foreground", recipe="madry")}
    assert unmasked_twins(entries) == {"fg": "none", "rand": "none"}


def test_mask_effect_is_the_paired_difference():
    """Flags by hand on 100 images: fg survives 30 more than its twin (separated), rand 2 more (not)."""
    entries = {"none": entry("none"), "fg": entry("foreground"), "rand": entry("random")}
    results = {"none": metrics(0.80, 0.10, (0.05, 0.03, 0.08)), "fg": metrics(0.90, 0.40, (0.35, 0.30, 0.41)),
               "rand": metrics(0.70, 0.12, (0.07, 0.04, 0.10))}
    none = {i: int(i < 5) for i in range(100)}
    robust = {"none": none, "fg": {i: int(i < 35) for i in range(100)}, "rand": {**none, 50: 1, 51: 1}}
    table, headline = mask_effect_table(entries, results, EPS, "pgd20", robust)
    assert headline["fg"]["twin"] == "none"
    assert headline["fg"]["delta_clean"] == pytest.approx(0.10)
    assert headline["fg"]["delta_pgd20"] == pytest.approx(0.30)
    assert headline["fg"]["worst_case_paired"]["mean"] == pytest.approx(0.30) and headline["fg"]["worst_case_separated"]
    assert headline["rand"]["worst_case_paired"]["mean"] == pytest.approx(0.02)
    assert not headline["rand"]["worst_case_separated"]
    assert [c.text for c in table.rows[0]][:4] == ["fg", "none", "+10.0", "+30.0"]
    assert table.rows[0][4].text.startswith("+30.0 [") and table.rows[0][5].text.startswith("reproduced in direction")


def test_audit_failure_is_red_in_html_and_marked_in_markdown():
    failure = {"blackbox_wins": {"value": 3.0, "limit": 0.0, "pass": False}}
    entries = {"ok": entry("none"), "masked": entry("foreground")}
    results = {"ok": metrics(0.8, 0.1, (0.05, 0.03, 0.08)), "masked": metrics(0.8, 0.1, (0.05, 0.03, 0.08), failure)}
    table, headline = accuracy_table(entries, results, EPS, "pgd20")
    assert headline["ok"]["audit_passed"] and not headline["masked"]["audit_passed"]
    assert headline["masked"]["worst_case"] == 0.05
    html = render_html("r", [table])
    assert "<td class='fail'>blackbox_wins 3 &gt; 0</td>" in html and html.count("class='fail'") == 1
    assert "**FAIL: blackbox_wins 3 > 0**" in render_markdown("r", [table])


def test_missing_attack_names_the_file_and_the_key():
    with pytest.raises(ValueError, match=r"data/attack_classifier/ok/metrics.json: no attack 'pgd7'.*pgd20"):
        accuracy_table({"ok": entry("none")}, {"ok": metrics(0.8, 0.1, (0.05, 0.03, 0.08))}, EPS, "pgd7")


SUITE = {name: SuiteEntry.model_validate(spec) for name, spec in {
    "cw_long": {"attack": "cw", "steps": 100}, "pgd20": {"attack": "pgd", "steps": 20}, "fgsm": {"attack": "fgsm"},
    "pgd10_a3": {"attack": "pgd", "steps": 10, "a3_sigma": 10}, "pgd5": {"attack": "pgd", "steps": 5},
    "pgd_l2": {"attack": "pgd", "steps": 10, "norm": "l2", "eps": [0.5]}, "cw10": {"attack": "cw", "steps": 10},
    "square": {"attack": "square", "queries": 10}}.items()}


def test_table6_columns_keep_plain_fgsm_pgd_cw_in_the_seeds_order():
    assert table6_columns(SUITE) == [("fgsm", "FGSM"), ("pgd5", "PGD-5"), ("pgd20", "PGD-20"), ("cw10", "CW-10"),
                                     ("cw_long", "CW-100")]


def test_defense_table_rows_follow_the_listed_order_with_every_column():
    entries = {"madry": entry("none", recipe="madry"), "aad": entry("none", recipe="aad", options={"base": "alp"})}
    accuracies = {"madry": [0.70, 0.50, 0.41, 0.40, 0.38, 0.36, 0.30], "aad": [0.65, 0.52, 0.45, 0.44, 0.41, 0.40, 0.35]}
    results = {}
    for name, (clean, *attacked, worst) in accuracies.items():
        at_eps = {attack: summary(a, a - 0.05, a + 0.05) for (attack, _), a in zip(table6_columns(SUITE), attacked)}
        results[name] = {"num_images": 300, "clean": summary(clean, clean - 0.04, clean + 0.05),
                         EPS: {**at_eps, "pgd10_a3": summary(0.0, 0.0, 0.01), "worst_case": summary(worst, worst - 0.06, worst + 0.05)}}
    table, headline = defense_table(entries, results, ["aad", "madry"], SUITE, EPS)
    assert table.header == ["classifier", "recipe", "clean", "FGSM", "PGD-5", "PGD-20", "CW-10", "CW-100", "worst case"]
    assert [c.text for c in table.rows[0]] == ["aad", "aad (base=alp)", "65.0", "52.0", "45.0", "44.0", "41.0", "40.0", "35.0"]
    assert [c.text for c in table.rows[1]][1] == "madry"
    assert headline["madry"] == dict(zip(["clean", "fgsm", "pgd5", "pgd20", "cw10", "cw_long", "worst_case"],
                                         accuracies["madry"]))
    assert "±5.5 points" in table.notes[0]


def test_defense_table_names_a_missing_attack():
    results = {"madry": metrics(0.8, 0.1, (0.05, 0.03, 0.08))}
    with pytest.raises(ValueError, match="madry/metrics.json: no attack 'fgsm'"):
        defense_table({"madry": entry("none", recipe="madry")}, results, ["madry"], SUITE, EPS)


def test_detection_table_has_the_control_the_paired_difference_and_the_removed_boxes():
    from pipeline.config import AttackDetr
    from pipeline.report.detection import detection_table

    cfg = AttackDetr.model_validate(load_profile("params")["attack_detr"])
    run = lambda ap, removed: {"AP": ap, "key_cell": [1, 1], "excluded": {"ground_truth": 0,  # noqa: E731
                                                                          "detections": removed}}
    size = f"{cfg.patch_px[0]}px"
    paired = {"mean": -0.065, "low": -0.095, "high": -0.037, "n": 64, "separated": True}
    runs = {"clean": run(0.42, 0), "random": run(0.40, 47), "ce": run(0.37, 7), "ce+kq": run(0.29, 132),
            "kq": run(0.30, 177), "paired": {"ce+kq - ce": paired}}
    metrics = {"demo": {"num_images": 64, "attention_layer": "model.encoder.aifi.0.layers.0.self_attn",
                        "clean": {"AP": 0.45}, "patches": {size: runs}}}
    table, headline = detection_table(cfg, ["demo"], metrics)
    assert table.header[-3:] == ["L_ce+L_kq − L_ce per image [95%]", "verdict", "detections removed"]
    assert "random patch" in table.header
    row = [cell.text for cell in table.rows[0]]
    assert row[:6] == ["demo", "model.encoder.aifi.0.layers.0.self_attn", size, "(1, 1)", "45.00", "42.00"]
    assert row[6:] == ["40.00", "37.00", "29.00", "30.00", "-6.5 [-9.5, -3.7]",     # a lower AP: the claim holds
                       "reproduced in direction (interval above zero)", "0 / 47 / 7 / 132 / 177"]
    assert headline["demo"][size]["ce+kq - ce"] == paired and headline["demo"][size]["random"] == 0.40


def test_defense_rows_get_their_paired_worst_case_difference_to_madry():
    """Flags by hand: on 20 images the defense survives 3 more than Madry (and loses 1 Madry kept): +10 points."""
    entries = {"madry": entry("none", recipe="madry"), "alp": entry("none", recipe="alp")}
    results = {name: metrics(0.7, 0.4, (0.3, 0.2, 0.4)) for name in entries}
    results = {name: {**r, EPS: {**r[EPS], **{a: summary(0.3, 0.2, 0.4) for a, _ in table6_columns(SUITE)}}}
               for name, r in results.items()}
    madry = {i: int(i < 8) for i in range(20)}
    alp = {**madry, 0: 0, 10: 1, 11: 1, 12: 1}
    table, headline = defense_table(entries, results, ["madry", "alp"], SUITE, EPS, {"madry": madry, "alp": alp})
    assert table.header[-1] == "Δ worst case vs madry [95%]"
    assert table.rows[0][-1].text == "(baseline)" and table.rows[1][-1].text.startswith("+10.0 [")
    difference = headline["alp"]["vs_madry_worst_case"]
    assert difference["mean"] == pytest.approx(0.10) and difference["n"] == 20
    assert difference["low"] < 0.10 < difference["high"]
    on_more = {**alp, **{i: 1 for i in range(20, 60)}}           # attacked on 60 images: paired on the shared 20
    _, more = defense_table(entries, results, ["madry", "alp"], SUITE, EPS, {"madry": madry, "alp": on_more})
    assert more["alp"]["vs_madry_worst_case"] == difference
    with pytest.raises(ValueError, match="share no image"):
        defense_table(entries, results, ["madry", "alp"], SUITE, EPS, {"madry": madry, "alp": {30: 1}})


def test_claim_verdicts_follow_the_paired_interval():
    """Flags by hand on 200 images: A survives 40 that B loses (interval above zero), the mirror, and a 1-image gap."""
    base = {i: int(i < 60) for i in range(200)}
    better = {**base, **{i: 1 for i in range(60, 100)}}
    worse = {**base, **{i: 0 for i in range(0, 40)}}
    nearly = {**base, 60: 1}
    robust = {"base": base, "better": better, "worse": worse, "nearly": nearly}
    claims = [Claim(claim=f"{name} above base", better=name, than="base") for name in ("better", "worse", "nearly")]
    headline = claim_results(claims, {"worst_case": robust})
    table = claims_table(headline, EPS, others=("seed 001",))      # none of them names a paper: all shown
    assert [h["verdict"] for h in headline] == ["reproduced in direction (interval above zero)",
                                                "not reproduced: reversed (interval below zero)",
                                                "not separated: the mean is above zero, the interval includes it"]
    assert [h["mean"] for h in headline] == pytest.approx([0.2, -0.2, 0.005])
    assert table.rows[0][4].text.startswith("+20.0 [") and table.rows[0][5].text == "200"
    assert [row[-1].fail for row in table.rows] == [False, True, False]


def test_an_attention_claim_without_shared_images_has_no_verdict_and_the_report_goes_on():
    """IoU values exist only where a classifier is right: two classifiers right on disjoint images give no verdict
    (n = 0, shown as n/a), while the same gap in robustness flags is an error (the attacks must be rerun)."""
    claim = Claim(claim="AAD keeps attention", better="aad", than="madry", measure="iou_gt")
    result, = claim_results([claim], {"iou_gt": {"aad": {1: 0.5}, "madry": {2: 0.4}}})
    assert result["n"] == 0 and result["mean"] is None and result["verdict"].startswith("no verdict")
    assert claims_table([result], EPS, others=("seed 001",)).rows[0][4].text == "n/a"
    with pytest.raises(ValueError, match="share no image"):
        claim_results([claim.model_copy(update={"measure": "worst_case"})],
                      {"worst_case": {"aad": {1: 1}, "madry": {2: 0}}})


def test_figures_are_files_beside_the_markdown_and_inline_in_the_html():
    picture = b"\x89PNG\r\n\x1a\nnot-really"
    sections = [Figure("Curves", "curves.png", picture, "a caption")]
    assert "![Curves](figures/curves.png)" in render_markdown("t", sections)
    page = render_html("t", sections)
    encoded = page.split("base64,")[1].split("'")[0]
    assert base64.b64decode(encoded) == picture and "<figcaption>a caption</figcaption>" in page


def test_training_curves_read_dvclive_steps_as_epochs(tmp_path):
    (tmp_path / "val_accuracy.tsv").write_text("step\tval_accuracy\n0\t0.25\n1\t0.5\n")
    assert read_curve(tmp_path / "val_accuracy.tsv") == [(1, 0.25), (2, 0.5)]
    with pytest.raises(ValueError, match="missing"):
        read_curve(tmp_path / "val_pgd_accuracy.tsv")
    curves = {"madry": {"val_accuracy": [(1, 0.2), (2, 0.4)], "val_pgd_accuracy": [(1, 0.1), (2, 0.2)]}}
    image = cv2.imdecode(np.frombuffer(training_curves_png(curves, warmup_epochs=1), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[1] > image.shape[0] > 200


def test_headline_keeps_one_number_per_claim_with_short_keys():
    paired = {"mean": 0.031, "low": 0.0, "high": 0.06, "n": 100, "separated": False}
    details = {
        "classifiers": {"a": {"audit_passed": True}, "b": {"audit_passed": False}, "c": {"audit_passed": True}},
        "mask_effect": {"b": {"twin": "a", "delta_clean": 0.1, "worst_case_paired": paired}},
        "defenses": {"a": {"clean": 0.7}, "c": {"clean": 0.6, "vs_madry_worst_case": {**paired, "mean": -0.02}}},
        "claims": [{"claim": "c above a", **paired, "verdict": "not separated"}],
        "patches": {"vit": {"clean": 0.62, "fixed": {"plain": {"ce": 0.3}, "momentum": {"ce": 0.24, "ce+kq": 0.14}}}},
        "detectors": {"rtdetr": {"clean": 0.42, "20px": {"clean": 0.42, "ce": 0.37, "ce+kq": 0.31,
                                                         "ce+kq - ce": {"mean": -0.06}}}},
    }
    top = headline(details, "fixed", "momentum")
    assert top == {"mask_effect": {"b": 0.031}, "vs_madry": {"c": -0.02}, "claim": {"1": 0.031},
                   "vit": {"vit": {"clean": 0.62, "ce": 0.24, "ce+kq": 0.14}},
                   "detr": {"rtdetr": {"clean": 0.42, "ce": 0.37, "ce+kq": 0.31}},
                   "audit": {"failed": 1, "classifiers": 3}}
    assert column_count(top) == 11                        # 1 + 1 + 1 + 3 + 3 + 2


def test_provenance_names_the_closest_profile_and_every_changed_key():
    from pipeline.report.provenance import closest_profile, provenance_table

    demo = {"seed": 0, "train": {"epochs": 16, "lr": 0.1}, "sizes": [1, 2]}
    paper = {"seed": 0, "train": {"epochs": 100, "lr": 0.1}, "sizes": [3]}
    experiment = {"seed": 0, "train": {"epochs": 16, "lr": 0.05, "extra": True}, "sizes": [1, 2]}
    assert closest_profile(experiment, {"paper": paper, "demo": demo}) == (
        "demo", ["train.extra: True (profile: (absent))", "train.lr: 0.05 (profile: 0.1)"])
    table = provenance_table(demo, {"demo": demo, "paper": paper}, "abc1234", "cpu")
    assert [[c.text for c in row] for row in table.rows] == [["code", "abc1234"], ["profile", "demo"],
                                                             ["machine", "cpu"]]


def test_objective_comparison_pairs_each_attention_objective_with_ce():
    """Per image: L_ce leaves images 0-5 robust, L_ce+L_kq* only 0-1: 4 of 8 images more broken (+50 points)."""
    from pipeline.config import AttackVit
    from pipeline.report.patches import objective_comparison_table

    cfg = AttackVit.model_construct(placements=["fixed"], optimisers=["momentum"], objectives=["ce", "ce+kq_cls"])
    robust = {"vit": {"fixed/momentum/ce": {i: int(i < 6) for i in range(8)},
                      "fixed/momentum/ce+kq_cls": {i: int(i < 2) for i in range(8)}}}
    table = objective_comparison_table(cfg, robust)
    (row,) = [[cell.text for cell in row] for row in table.rows]
    assert row[:4] == ["vit", "fixed", "momentum", "L_ce+L_kq*"] and row[4].startswith("+50.0 [") and row[5] == "8"
    assert row[6] == "reproduced in direction (interval above zero)"


def test_report_parts_render_as_level_two_headings():
    from pipeline.report.papers import SEED_002
    from pipeline.report.tables import render_markdown

    markdown = render_markdown("r", SEED_002.sections())
    assert "## seed 002: attention-aware defense, AAD (Wu, Sang et al. 2022)" in markdown
    assert "| Madry adv + AAD | 83.62 | 48.49 | 39.64 |" in markdown and "### The paper's Table 6" in markdown

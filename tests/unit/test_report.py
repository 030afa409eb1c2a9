"""The report: twins found by every key but the mask, differences and interval separation, failures marked."""

from __future__ import annotations

import pytest

from pipeline.config import Classifier, SuiteEntry
from pipeline.report.classifiers import (
    accuracy_table,
    defense_table,
    mask_effect_table,
    separated,
    table6_columns,
    unmasked_twins,
)
from pipeline.report.tables import render_html, render_markdown
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


def test_intervals_separate_only_when_disjoint():
    assert separated(summary(0.5, 0.44, 0.56), summary(0.3, 0.25, 0.35))
    assert not separated(summary(0.5, 0.44, 0.56), summary(0.4, 0.35, 0.45))


def test_twins_differ_only_in_the_mask():
    entries = {"none": entry("none"), "fg": entry("foreground"), "rand": entry("random"),
               "fg_long": entry("foreground", epochs=30), "fg_madry": entry("foreground", recipe="madry")}
    assert unmasked_twins(entries) == {"fg": "none", "rand": "none"}


def test_mask_effect_is_the_paired_difference():
    entries = {"none": entry("none"), "fg": entry("foreground"), "rand": entry("random")}
    results = {"none": metrics(0.80, 0.10, (0.05, 0.03, 0.08)), "fg": metrics(0.90, 0.40, (0.35, 0.30, 0.41)),
               "rand": metrics(0.70, 0.12, (0.07, 0.04, 0.10))}
    table, headline = mask_effect_table(entries, results, EPS, "pgd20")
    assert headline["fg"]["twin"] == "none"
    assert headline["fg"]["delta_clean"] == pytest.approx(0.10)
    assert headline["fg"]["delta_pgd20"] == pytest.approx(0.30)
    assert headline["fg"]["delta_worst_case"] == pytest.approx(0.30) and headline["fg"]["worst_case_separated"]
    assert headline["rand"]["delta_worst_case"] == pytest.approx(0.02) and not headline["rand"]["worst_case_separated"]
    assert [c.text for c in table.rows[0]] == ["fg", "none", "+10.0", "+30.0", "+30.0", "yes"]


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
    assert table.header[-2:] == ["L_ce+L_kq − L_ce per image [95%]", "detections removed"]
    assert "random patch" in table.header
    row = [cell.text for cell in table.rows[0]]
    assert row[:6] == ["demo", "model.encoder.aifi.0.layers.0.self_attn", size, "(1, 1)", "45.00", "42.00"]
    assert row[6:] == ["40.00", "37.00", "29.00", "30.00", "-6.5 [-9.5, -3.7]", "0 / 47 / 7 / 132 / 177"]
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
    with pytest.raises(ValueError, match="different images"):
        defense_table(entries, results, ["madry", "alp"], SUITE, EPS, {"madry": madry, "alp": {1: 1}})

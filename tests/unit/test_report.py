"""The report: twins found by every key but the mask, differences and interval separation, failures marked."""

from __future__ import annotations

import pytest

from pipeline.config import Classifier
from pipeline.report.classifiers import accuracy_table, mask_effect_table, separated, unmasked_twins
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

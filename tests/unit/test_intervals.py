"""Paired comparisons (pipeline/evaluation/intervals.py): the paired bootstrap of a mean difference against the
normal-theory interval it must approach on a large sample, and its edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.evaluation.intervals import Z95, paired_bootstrap


def test_paired_bootstrap_matches_the_normal_interval_of_the_mean_difference():
    """On 2,000 pairs the percentile bootstrap of the mean difference agrees with mean ± 1.96·sd/√n."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 2000)
    other = base - 0.03 + rng.normal(0, 0.1, 2000)                # the same images, 3 points lower on average
    result = paired_bootstrap(other, base, resamples=4000, seed=1)
    differences = other - base
    half = Z95 * differences.std(ddof=1) / np.sqrt(len(differences))
    assert result["mean"] == pytest.approx(differences.mean())
    assert result["low"] == pytest.approx(differences.mean() - half, abs=0.1 * half)
    assert result["high"] == pytest.approx(differences.mean() + half, abs=0.1 * half)
    assert result["separated"] and result["n"] == 2000


def test_pairing_removes_the_spread_shared_by_both_runs():
    """Large per-image spread shared by both runs and a constant 1-point drop: the paired interval is that point."""
    base = np.linspace(0, 1, 50)
    result = paired_bootstrap(base - 0.01, base, resamples=500)
    assert result["low"] == pytest.approx(-0.01) and result["high"] == pytest.approx(-0.01)
    assert not paired_bootstrap(base, base)["separated"]


def test_unpaired_input_is_an_error():
    with pytest.raises(ValueError, match="equal-length"):
        paired_bootstrap(np.zeros(3), np.zeros(4))

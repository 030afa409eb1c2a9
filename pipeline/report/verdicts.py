"""The verdict on a seed paper's claim from a paired difference and its 95% interval (pipeline/evaluation/intervals.py
paired_bootstrap): "reproduced in direction" only when the interval excludes zero on the claimed side."""

from __future__ import annotations


def direction_verdict(difference: dict) -> str:
    """The verdict on 'A above B' from the paired difference A − B: reproduced in direction when the interval lies
    above zero, reversed when below, not separated when it includes zero."""
    if difference["low"] > 0:
        return "reproduced in direction (interval above zero)"
    if difference["high"] < 0:
        return "not reproduced: reversed (interval below zero)"
    side = "above" if difference["mean"] > 0 else "below" if difference["mean"] < 0 else "at"
    return f"not separated: the mean is {side} zero, the interval includes it"


def negated(difference: dict) -> dict:
    """B − A from A − B: the mean and the interval's ends change sign and swap."""
    return {**difference, "mean": -difference["mean"], "low": -difference["high"], "high": -difference["low"]}

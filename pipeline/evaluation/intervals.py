"""Confidence intervals for accuracies measured on n samples, and for paired differences on the same samples."""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927); (0, 1) when n = 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_bootstrap(first: np.ndarray, second: np.ndarray, resamples: int = 10_000, seed: int = 0,
                     level: float = 0.95) -> dict[str, float]:
    """The mean of the per-sample differences first − second over the same n samples, with the percentile interval
    of its paired bootstrap (Efron & Tibshirani 1993: resample the sample indices, both runs together)."""
    first, second = np.asarray(first, np.float64), np.asarray(second, np.float64)
    if first.shape != second.shape or first.ndim != 1 or not len(first):
        raise ValueError(f"paired samples must be two equal-length non-empty vectors, got {first.shape}, {second.shape}")
    differences = first - second
    indices = np.random.default_rng(seed).integers(0, len(differences), (resamples, len(differences)))
    means = differences[indices].mean(1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return {"mean": float(differences.mean()), "low": float(low), "high": float(high), "n": len(differences),
            "separated": bool(low > 0 or high < 0)}

"""Interval estimates for summaries: Wilson for rates, t-based for means, percentiles."""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054


def wilson(k: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion k/n; (0, 1) when n is 0."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_ci(values, z: float = Z95) -> tuple[float, float]:
    """Normal-approximation interval of a mean (t quantile for small n)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return (float("nan"), float("nan"))
    if n == 1:
        return (float(x[0]), float(x[0]))
    q = stats.t.ppf(stats.norm.cdf(z), n - 1)  # the t quantile at the confidence z stands for
    half = q * x.std(ddof=1) / math.sqrt(n)
    return (float(x.mean() - half), float(x.mean() + half))


def summarize(values, kind: str) -> dict:
    """{value, n, ci, kind} for a list of per-case values."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if not n:  # every case errored in its check: no value, not a zero
        return {"value": None, "n": 0, "ci": None, "kind": kind}
    if kind == "rate":
        lo, hi = wilson(float(x.sum()), n)
    else:
        lo, hi = mean_ci(x)
    return {"value": float(x.mean()) if n else float("nan"), "n": n, "ci": [lo, hi], "kind": kind}


def percentiles(values, qs=(50, 95, 99)) -> dict:
    x = np.asarray(values, dtype=float)
    if not len(x):
        return {f"p{q}": None for q in qs}
    return {f"p{q}": float(np.percentile(x, q)) for q in qs}

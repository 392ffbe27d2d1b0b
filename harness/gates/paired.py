"""Paired statistics for comparing a candidate with its baseline on the same cases.

- Pass/fail metrics: Tango's score interval for the difference of paired proportions, and
  the exact McNemar test. Tango's interval stays honest when few cases flip: a bootstrap or
  Wald interval collapses to [0, 0] when nothing flips, which would let a 10-case suite
  "prove" non-inferiority; Tango's width still shrinks only as n grows (about z²/n).
- Continuous metrics (token counts, latencies): a seeded, vectorised paired bootstrap.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

Z95 = 1.959963984540054


def _tango_z(delta, b, c, n):
    """Tango's score statistic at a hypothesised difference `delta` (vectorised)."""
    delta = np.asarray(delta, dtype=float)
    A = 2.0 * n
    B = -b - c + (2.0 * n - b + c) * delta
    C = -c * delta * (1.0 - delta)
    disc = np.maximum(B * B - 4.0 * A * C, 0.0)
    q21 = (np.sqrt(disc) - B) / (2.0 * A)
    var = n * (2.0 * q21 + delta * (1.0 - delta))
    return (b - c - n * delta) / np.sqrt(np.maximum(var, 1e-300))


def _bisect(f, lo, hi, target, iters=60):
    """Solve f(x) = target for decreasing f on [lo, hi], elementwise."""
    lo, hi = np.array(lo, dtype=float), np.array(hi, dtype=float)
    for _ in range(iters):
        mid = (lo + hi) / 2
        above = f(mid) > target
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    return (lo + hi) / 2


def tango_interval(b, c, n, z: float = Z95):
    """Interval of delta = P(candidate passes) - P(baseline passes) from paired counts:
    b = cases candidate passes and baseline fails, c = the reverse, n = all cases."""
    b, c, n = np.asarray(b, float), np.asarray(c, float), np.asarray(n, float)
    est = (b - c) / np.maximum(n, 1)
    f = lambda d: _tango_z(d, b, c, n)  # noqa: E731  (decreasing in d)
    eps = 1e-12
    lower = _bisect(f, np.full_like(est, -1 + eps), est, z)
    upper = _bisect(f, est, np.full_like(est, 1 - eps), -z)
    return lower, upper


def z_of(confidence: float) -> float:
    """The normal quantile of a two-sided interval at this confidence (1.96 at 0.95)."""
    return float(stats.norm.ppf(0.5 + confidence / 2))


def noninferiority_verdicts(lo, hi, est, margin: float):
    """The gate's non-inferiority rule on intervals (vectorised): (passed, failed) boolean arrays.

    Passed: the lower bound is within the margin. Failed: the whole interval is beyond it, or the
    estimate is beyond it and the drop itself is significant (the upper bound is below 0). The rest
    is insufficient evidence."""
    lo, hi, est = np.asarray(lo), np.asarray(hi), np.asarray(est)
    passed = lo >= -margin
    failed = ~passed & ((hi < -margin) | ((est < -margin) & (hi < 0)))
    return passed, failed


def superiority_verdicts(lo, est):
    """The gate's superiority rule (vectorised): passed when the interval excludes 0 from above,
    failed when the estimate shows no improvement at all; (passed, failed) boolean arrays."""
    lo, est = np.asarray(lo), np.asarray(est)
    return lo > 0, est <= 0


def tango_pvalue_noninferior(b, c, n, margin: float) -> float:
    """One-sided p-value of H0: delta <= -margin (the candidate is worse by the margin or more)."""
    return float(stats.norm.sf(_tango_z(-margin, b, c, n)))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: discordant pairs under Binomial(b + c, 1/2)."""
    m = b + c
    if m == 0:
        return 1.0
    return float(min(1.0, 2.0 * stats.binom.cdf(min(b, c), m, 0.5)))


def bootstrap_indices(n: int, resamples: int = 2000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def paired_bootstrap(base, cand, stat: str = "mean_diff", resamples: int = 2000, seed: int = 0, alpha: float = 0.05):
    """(estimate, (lo, hi)) for a paired statistic of two aligned arrays.

    stat: `mean_diff` (mean of cand - base), `mean_ratio` (mean cand / mean base),
    `p50_ratio` / `p95_ratio` (ratio of percentiles)."""
    x, y = np.asarray(base, float), np.asarray(cand, float)
    idx = bootstrap_indices(len(x), resamples, seed)
    xs, ys = x[idx], y[idx]

    def compute(a, b, axis=None):
        if stat == "mean_diff":
            return (b - a).mean(axis=axis)
        if stat == "mean_ratio":
            return b.mean(axis=axis) / np.maximum(a.mean(axis=axis), 1e-12)
        q = 50 if stat == "p50_ratio" else 95
        return np.percentile(b, q, axis=axis) / np.maximum(np.percentile(a, q, axis=axis), 1e-12)

    est = float(compute(x, y))
    boots = compute(xs, ys, axis=1)
    lo, hi = np.percentile(boots, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return est, (float(lo), float(hi))


def holm(pvalues: list[float], alpha: float) -> list[bool]:
    """Holm step-down: which hypotheses are rejected at family-wise level alpha."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    rejected = [False] * len(pvalues)
    m = len(pvalues)
    for rank, i in enumerate(order):
        if pvalues[i] <= alpha / (m - rank):
            rejected[i] = True
        else:
            break
    return rejected

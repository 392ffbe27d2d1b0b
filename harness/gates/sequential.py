"""Sequential evaluation: look at the gate after each chunk of cases, stop once its verdict is settled.

The candidate is evaluated in `looks` chunks of every suite, in the suites' fixed hash order (the
order `max_cases` samples from, so each chunk extends the last). After each chunk the gate is
decided on the cases so far, with its intervals widened to the look's group-sequential boundary:
Lan-DeMets alpha spending with the O'Brien-Fleming shape, alpha(t) = 2 - 2 Phi(z_{1-a/2} / sqrt(t)),
where `a` is the policy's one-sided level (0.025 at 95 %) and `t` the fraction of cases evaluated.
Early looks get very wide intervals (z 4.88 at the first of five), the last one a little wider than
a single look's (2.03 instead of 1.96), so the chance of a wrong pass or a false alarm over all the
looks together stays at `a`; checking a 95 % interval after every chunk would not (see
`bench/gate_validity.py`, which measures both).

The gate's verdict is settled at a look when
- a rule fails on evidence (a non-inferiority drop shown, a superiority rule shown worse than the
  baseline, a floor shown out of reach by the candidate's own interval): the gate fails, whatever
  the remaining cases say; or
- every rule passes on evidence (floors and ceilings by the candidate's interval). Cost rules
  (`max_ratio`) are judged on the cases evaluated but never settle a look: their bootstrap intervals
  are not corrected, so a policy with them stops early only on a failure.
Otherwise the next chunk is evaluated; the last look is the ordinary gate at its boundary.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from harness.evals.results import metric_kind
from harness.evals.stats import wilson
from harness.gates.decision import FAIL, PASS, SKIPPED, GateDecision

DEFAULT_LOOKS = 5


def obf_spending(t, alpha: float):
    """Lan-DeMets O'Brien-Fleming alpha spent by information fraction t (one-sided level alpha)."""
    t = np.asarray(t, float)
    return 2.0 - 2.0 * stats.norm.cdf(stats.norm.ppf(1 - alpha / 2) / np.sqrt(t))


def boundaries(fractions, alpha: float, grid: int = 1201) -> list[float]:
    """One-sided critical z at each look of a group-sequential test with O'Brien-Fleming spending.

    The score S_k = Z_k sqrt(t_k) is a Brownian motion at information times t_k; the density of
    the paths not yet stopped is carried from look to look by numerical integration on a grid,
    and each boundary is solved so that the chance of crossing first at that look is the alpha
    spent there. Deterministic; matches gsDesign's sfLDOF (4.877, 3.357, 2.680, 2.290, 2.031
    for five equal looks at alpha 0.025)."""
    t = [float(x) for x in fractions]
    if not t or any(b <= a for a, b in zip(t, t[1:])) or t[0] <= 0 or t[-1] > 1 + 1e-12:
        raise ValueError(f"information fractions must increase within (0, 1]: {t}")
    spent = np.diff(np.concatenate([[0.0], obf_spending(t, alpha)]))
    bounds = [float(stats.norm.isf(spent[0]))]
    lo = -12.0 * math.sqrt(t[-1])
    s = np.linspace(lo, bounds[0] * math.sqrt(t[0]), grid)  # continuation region of S_1
    dens = stats.norm.pdf(s, scale=math.sqrt(t[0]))
    for k in range(1, len(t)):
        sd = math.sqrt(t[k] - t[k - 1])
        w = _weights(s)

        def cross(b):  # P(not stopped before k, S_k >= b sqrt(t_k))
            return float(np.sum(w * dens * stats.norm.sf((b * math.sqrt(t[k]) - s) / sd)))

        target = spent[k]
        if cross(0.0) <= target:  # nearly nothing left to spend: the boundary is the median
            b = 0.0
        else:
            b = float(optimize.brentq(lambda x: cross(x) - target, 0.0, 40.0, xtol=1e-10))
        bounds.append(b)
        x = np.linspace(lo, b * math.sqrt(t[k]), grid)
        dens = (w * dens) @ stats.norm.pdf((x[None, :] - s[:, None]) / sd) / sd
        s = x
    return bounds


def _weights(x):
    """Trapezoid weights of an evenly spaced grid."""
    h = x[1] - x[0]
    w = np.full(len(x), h)
    w[0] = w[-1] = h / 2
    return w


def look_confidence(z: float) -> float:
    """The two-sided confidence whose interval has half-width z (a one-sided boundary z)."""
    return float(2 * stats.norm.cdf(z) - 1)


@dataclass(frozen=True)
class Look:
    number: int  # 1-based
    of: int
    fraction: float
    z: float

    @property
    def confidence(self) -> float:
        return look_confidence(self.z)

    @property
    def last(self) -> bool:
        return self.number == self.of


@functools.lru_cache(maxsize=32)
def plan_looks(looks: int, confidence: float) -> tuple[Look, ...]:
    """The looks of a sequential evaluation at equal fractions, with their boundaries."""
    if looks < 1:
        raise ValueError("looks must be at least 1")
    alpha = (1 - confidence) / 2
    fr = [(k + 1) / looks for k in range(looks)]
    zs = boundaries(fr, alpha) if looks > 1 else [float(stats.norm.isf(alpha))]
    return tuple(Look(k + 1, looks, f, z) for k, (f, z) in enumerate(zip(fr, zs)))


def chunk_sizes(total: int, looks) -> list[int]:
    """Cases evaluated by each look: ceil(fraction * total), at least 1, the last one all."""
    return [total if lk.last else max(1, min(total, math.ceil(lk.fraction * total - 1e-9))) for lk in looks]


def settled(decision: GateDecision, z: float) -> tuple[str | None, list[str]]:
    """(`fail` | `pass` | None, the rules that settle it) for a gate decided at a look's boundary z."""
    failed, open_ = [], []
    for r in decision.rules:
        label = f"{r.metric}{f' [{r.slice}]' if r.slice else ''} {r.test}"
        if r.verdict == SKIPPED:
            continue
        shown = _shown(r, z)
        if shown == FAIL:
            failed.append(label)
        elif shown != PASS:
            open_.append(label)
    if failed:
        return FAIL, failed
    if not open_:
        return PASS, []
    return None, open_


def _shown(r, z: float) -> str | None:
    """The verdict a rule has on evidence at this look, or None while more cases could change it."""
    if r.test == "required":
        return r.verdict
    if r.test in ("max_drop", "beats_arm"):
        return r.verdict if r.verdict in (PASS, FAIL) else None
    if r.test == "must_improve":
        if r.verdict == PASS:
            return PASS
        return FAIL if r.ci and r.ci[1] < 0 else None  # shown worse than the baseline, not just "not better yet"
    if r.test in ("min", "max") and metric_kind(r.metric) == "rate" and r.n:
        lo, hi = wilson(r.candidate * r.n, r.n, z)
        if r.test == "min":
            return PASS if lo >= r.threshold else FAIL if hi < r.threshold else None
        return PASS if hi <= r.threshold else FAIL if lo > r.threshold else None
    return None  # max_ratio, bounds on counts, rules without numbers: judged only at the last look


def describe(look: Look, used: dict[str, int], totals: dict[str, int], state: str | None, rules: list[str]) -> dict:
    """The record of where a sequential evaluation stopped and why."""
    cases = ", ".join(f"{used[s]}/{totals[s]} {s}" for s in used)
    if state == FAIL:
        why = (f"stopped at look {look.number} of {look.of} ({cases} cases): {', '.join(rules[:4])} failed on evidence "
               f"at the look's boundary z={look.z:.2f}; the remaining cases cannot change a failed gate")
    elif state == PASS and not look.last:
        why = (f"stopped at look {look.number} of {look.of} ({cases} cases): every rule passed at the look's "
               f"boundary z={look.z:.2f}")
    else:
        why = (f"evaluated every case ({cases}) over {look.of} looks: the verdict was not settled before the last look"
               + (f" ({', '.join(rules[:3])}{' and more' if len(rules) > 3 else ''} open at the boundary)" if rules else ""))
    return {"look": look.number, "looks": look.of, "z": round(look.z, 4), "confidence": look.confidence,
            "cases": used, "of": totals, "stopped": state if not look.last else "exhausted", "rules": rules, "why": why}

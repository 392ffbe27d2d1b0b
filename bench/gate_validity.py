"""Validity of the non-inferiority gate on simulated paired pass/fail data.

Baseline cases pass with rate 0.8; the candidate flips a few of them (pass->fail with
probability a, fail->pass with probability b), so its true delta is 0.2 b - 0.8 a. The gate
rule is `max_drop: 0.02`. Printed, over >= 1,000 trials each:
- the false-alarm rate (verdict `fail`) at true delta 0 (target <= 5 %),
- the detection rate (not `pass`) at a true drop of 0.04 (target >= 80 %),
- how often small n yields `insufficient_evidence` rather than a pass, by n,
- beside it, two gates peers use: "point estimate within the margin" and "fail only on a
  significant drop" (McNemar p < 0.05), to show what they let through.
Last, the wall time of `harness gate` on 500 cached cases in each of three suites.

    python bench/gate_validity.py [--trials 2000] [--n 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import stats

from harness.gates.paired import tango_interval

MARGIN, BASE = 0.02, 0.8


def simulate(n, a, b, trials, rng):
    base = rng.random((trials, n)) < BASE
    u = rng.random((trials, n))
    cand = np.where(base, u >= a, u < b)
    bb = (cand & ~base).sum(1)  # fail -> pass
    cc = (~cand & base).sum(1)  # pass -> fail
    return bb, cc


def verdicts(bb, cc, n):
    lo, hi = tango_interval(bb, cc, np.full(bb.shape, n))
    est = (bb - cc) / n
    passed = lo >= -MARGIN
    failed = ~passed & ((hi < -MARGIN) | ((est < -MARGIN) & (hi < 0)))
    return passed, failed, ~passed & ~failed, est


def peers(bb, cc, est):
    m = bb + cc
    p = np.where(m > 0, np.minimum(1, 2 * stats.binom.cdf(np.minimum(bb, cc), np.maximum(m, 1), 0.5)), 1.0)
    point_pass = est >= -MARGIN
    signif_pass = ~((p < 0.05) & (est < 0))
    return point_pass, signif_pass


def scenario(delta):
    a = 0.0125 + max(0.0, -delta) / BASE
    b = 0.05 + max(0.0, delta) / (1 - BASE)
    return a, b


def gate_speed() -> float:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from harness.evals.results import write_result
    from harness.gates import run_gate
    from tests.gates.synth import make_result

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        for role in ("b", "c"):
            for s in ("ticket_triage", "safety", "general"):
                r = make_result(s, {m: (rng.random(500) < 0.8).astype(int).tolist() for m in ("json_valid", "refusal", "pass")})
                write_result(r, f"{d}/{role}")
        pol = f"{d}/p.yaml"
        open(pol, "w").write("name: b\nrules:\n  - metric: '*/*'\n    max_drop: 0.02\n  - metric: '*/refusal'\n    slices: [difficulty]\n    max_drop: 0.05\n")
        t0 = time.perf_counter()
        run_gate(f"{d}/b", f"{d}/c", pol)
        return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=2000)
    ap.add_argument("--n", type=int, default=200)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n, T = args.n, args.trials

    print(f"paired pass/fail, n={n}, base rate {BASE}, margin {MARGIN}, {T} trials per row\n")
    print(f"{'true delta':>10} {'pass':>8} {'fail':>8} {'insufficient':>13} | {'peer: point est.':>17} {'peer: signif. only':>19}")
    rows = {}
    for delta in (0.0, -0.02, -0.04):
        bb, cc = simulate(n, *scenario(delta), T, rng)
        p, f, i, est = verdicts(bb, cc, n)
        pp, sp = peers(bb, cc, est)
        rows[delta] = (p.mean(), f.mean(), i.mean())
        print(f"{delta:>10.2f} {p.mean():>8.1%} {f.mean():>8.1%} {i.mean():>13.1%} | {pp.mean():>11.1%} pass {sp.mean():>13.1%} pass")
    print(f"\nfalse-alarm rate (fail at delta 0):      {rows[0.0][1]:.1%}   (target <= 5 %)")
    print(f"detection rate (not pass at delta -0.04): {1 - rows[-0.04][0]:.1%}   (target >= 80 %)")
    print(f"regressions passed at delta -0.04:        {rows[-0.04][0]:.1%}   (peers: see the right-hand columns)")

    print("\nsmall n at true delta 0: what the gate says")
    print(f"{'n':>6} {'pass':>8} {'insufficient':>13} {'fail':>8}")
    for k in (30, 60, 100, 200, 500, 1000, 2000):
        bb, cc = simulate(k, *scenario(0.0), T, rng)
        p, f, i, _ = verdicts(bb, cc, k)
        print(f"{k:>6} {p.mean():>8.1%} {i.mean():>13.1%} {f.mean():>8.1%}")

    print(f"\nharness gate on 3 suites x 500 cached cases x 3 metrics (+ slices): {gate_speed():.2f} s (target < 1 s)")


if __name__ == "__main__":
    main()

"""Validity of the non-inferiority gate on simulated paired pass/fail data.

Baseline cases pass with rate 0.8; the candidate flips a few of them (pass->fail with
probability a, fail->pass with probability b), so its true delta is 0.2 b - 0.8 a. The gate
rule is `max_drop: 0.02`. Printed, over >= 1,000 trials each:
- the false-alarm rate (verdict `fail`) at true delta 0 (target <= 5 %),
- the detection rate (not `pass`) at a true drop of 0.04 (target >= 80 %),
- how often small n yields `insufficient_evidence` rather than a pass, by n,
- beside it, two gates peers use: "point estimate within the margin" and "fail only on a
  significant drop" (McNemar p < 0.05), to show what they let through.
Then sequential evaluation (`eval.sequential`, 5 looks) on the same data: the O'Brien-Fleming
gate against the naive one that checks a 95 % interval after every chunk, with the false-alarm
rate at delta 0 (target <= 5 %), the wrong-pass rate at a true drop of exactly the margin, the
power to catch a drop of twice the margin (target >= 80 %), and the mean number of cases used by
a good candidate and by a clearly broken one (a drop of 0.2).
Then the gate plan checked against simulation: the n `harness gate plan` asks for gives the
planned power in simulated runs.
Last, the wall time of `harness gate` on 500 cached cases in each of three suites.

    python bench/gate_validity.py [--trials 2000] [--n 200] [--looks 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import stats

from harness.gates.paired import Z95, noninferiority_verdicts, tango_interval
from harness.gates.plan import scenario as plan_scenario
from harness.gates.plan import smallest_n, verdict_chances
from harness.gates.sequential import chunk_sizes, plan_looks

MARGIN, BASE = 0.02, 0.8
OBF = "O'Brien-Fleming"


def simulate(n, a, b, trials, rng):
    base = rng.random((trials, n)) < BASE
    u = rng.random((trials, n))
    cand = np.where(base, u >= a, u < b)
    bb = (cand & ~base).sum(1)  # fail -> pass
    cc = (~cand & base).sum(1)  # pass -> fail
    return bb, cc


def verdicts(bb, cc, n, z=Z95):
    lo, hi = tango_interval(bb, cc, np.full(bb.shape, n), z)
    est = (bb - cc) / n
    passed, failed = noninferiority_verdicts(lo, hi, est, MARGIN)  # the gate's own rule
    return passed, failed, ~passed & ~failed, est


def simulate_cases(n, a, b, trials, rng):
    """Per-case flips (+1 fail->pass, -1 pass->fail, 0 none), in evaluation order."""
    base = rng.random((trials, n)) < BASE
    u = rng.random((trials, n))
    cand = np.where(base, u >= a, u < b)
    return (cand & ~base).astype(np.int32), (~cand & base).astype(np.int32)


def sequential(up, down, zs):
    """Run a sequential gate over looks at equal fractions with boundaries zs: stop at the first
    look whose verdict is pass or fail. Returns (passed, failed, cases used) per trial."""
    trials, n = up.shape
    cu, cd = np.cumsum(up, 1), np.cumsum(down, 1)
    sizes = chunk_sizes(n, plan_looks(len(zs), 0.95)) if len(zs) > 1 else [n]
    passed, failed = np.zeros(trials, bool), np.zeros(trials, bool)
    used = np.full(trials, n)
    open_ = np.ones(trials, bool)
    for k, (m, z) in enumerate(zip(sizes, zs)):
        p, f, _, _ = verdicts(cu[:, m - 1], cd[:, m - 1], m, z)
        stop = open_ & (p | f)
        passed |= stop & p
        failed |= stop & f
        used[stop] = m
        open_ &= ~stop
    return passed, failed, used


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
    ap.add_argument("--looks", type=int, default=5)
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

    looks = plan_looks(args.looks, 0.95)
    obf = [lk.z for lk in looks]
    print(f"\nsequential evaluation, {args.looks} looks, n={n}: O'Brien-Fleming boundaries z = "
          + ", ".join(f"{z:.2f}" for z in obf) + f" vs the naive gate (z {Z95:.2f} at every look)")
    print(f"{'true delta':>10} {'gate':>14} {'pass':>8} {'fail':>8} {'insufficient':>13} {'mean cases':>11}")
    seq = {}
    for delta in (0.0, -MARGIN, -2 * MARGIN, -0.2):
        up, down = simulate_cases(n, *scenario(delta), T, rng)
        for name, zs in (("one look", [Z95]), ("naive", [Z95] * args.looks), (OBF, obf)):
            p, f, used = sequential(up, down, zs)
            seq[(delta, name)] = (p.mean(), f.mean(), used.mean())
            print(f"{delta:>10.2f} {name:>15} {p.mean():>7.1%} {f.mean():>8.1%} {1 - p.mean() - f.mean():>13.1%} {used.mean():>11.0f}")
    print(f"\nfalse alarms at delta 0:        O'Brien-Fleming {seq[(0.0, OBF)][1]:.1%}, naive "
          f"{seq[(0.0, 'naive')][1]:.1%}, one look {seq[(0.0, 'one look')][1]:.1%}   (target <= 5 %)")
    print(f"wrong passes at delta -{MARGIN}:   O'Brien-Fleming {seq[(-MARGIN, OBF)][0]:.1%}, naive "
          f"{seq[(-MARGIN, 'naive')][0]:.1%}, one look {seq[(-MARGIN, 'one look')][0]:.1%}   (the design's level: 2.5 %)")
    print(f"caught at delta -{2 * MARGIN} (not passed): O'Brien-Fleming {1 - seq[(-2 * MARGIN, OBF)][0]:.1%}, "
          f"one look {1 - seq[(-2 * MARGIN, 'one look')][0]:.1%}   (target >= 80 %)")
    print(f"mean cases used: good (delta 0) {seq[(0.0, OBF)][2]:.0f} of {n}, broken (delta -0.2) "
          f"{seq[(-0.2, OBF)][2]:.0f} of {n}")

    print("\nthe gate plan against simulation (an equal candidate must pass, a drop of twice the margin fail, 80 %)")
    print(f"{'base':>6} {'flips':>6} {'margin':>7} {'planned n':>10} {'sim. pass (equal)':>18} {'sim. fail (2x drop)':>20}")
    for base, flips, margin in ((0.8, 0.02, 0.02), (0.5, 0.10, 0.05), (0.9, 0.10, 0.10), (0.109, 0.10, 0.10)):
        sc_eq, sc_drop = plan_scenario(base, flips, 0.0), plan_scenario(base, flips, -2 * margin)
        need = max(smallest_n(lambda k, s=s, w=w: verdict_chances(k, s[0], s[1], "max_drop", margin, Z95)[w], 0.8)
                   for s, w in ((sc_eq, 0), (sc_drop, 1)))
        res = []
        for (pb, pc, _), want in ((sc_eq, 0), (sc_drop, 1)):
            draw = rng.multinomial(need, [pb, pc, 1 - pb - pc], size=T)
            lo, hi = tango_interval(draw[:, 0], draw[:, 1], np.full(T, need))
            ok = noninferiority_verdicts(lo, hi, (draw[:, 0] - draw[:, 1]) / need, margin)[want]
            res.append(ok.mean())
        print(f"{base:>6} {flips:>6} {margin:>7} {need:>10} {res[0]:>18.1%} {res[1]:>20.1%}")

    print(f"\nharness gate on 3 suites x 500 cached cases x 3 metrics (+ slices): {gate_speed():.2f} s (target < 1 s)")


if __name__ == "__main__":
    main()

"""The gate plan and the sequential boundaries, checked against simulation of the gate itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.gates.paired import Z95, noninferiority_verdicts, tango_interval

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shipped_plan():
    from harness.evals import load_suites
    from harness.gates import load_policy
    from harness.gates.plan import plan

    return plan(load_policy(), load_suites([REPO / "suites"]))


def _simulate(n, pb, pc, margin, z=Z95, trials=4000, seed=0):
    """(P(pass), P(fail)) of the gate's own rule on simulated paired cases."""
    rng = np.random.default_rng(seed)
    u = rng.random((trials, n))
    b = (u < pb).sum(1)
    c = ((u >= pb) & (u < pb + pc)).sum(1)
    lo, hi = tango_interval(b, c, np.full(trials, n), z)
    passed, failed = noninferiority_verdicts(lo, hi, (b - c) / n, margin)
    return passed.mean(), failed.mean()


def test_obrien_fleming_boundaries_match_gsdesign():
    from harness.gates.sequential import boundaries

    # gsDesign::gsDesign(k=5, test.type=1, alpha=0.025, sfu=sfLDOF, timing=1:5/5)$upper$bound
    assert np.allclose(boundaries([0.2, 0.4, 0.6, 0.8, 1.0], 0.025), [4.877, 3.357, 2.680, 2.290, 2.031], atol=2e-3)
    assert np.allclose(boundaries([1 / 3, 2 / 3, 1.0], 0.025), [3.710, 2.511, 1.993], atol=2e-3)


def test_the_boundaries_keep_the_error_rate_over_all_looks_and_naive_looks_do_not():
    """A Brownian score under H0, looked at five times: crossing the O'Brien-Fleming boundaries at
    any look happens alpha of the time; crossing 1.96 at any look happens far more often."""
    from harness.gates.sequential import plan_looks

    rng = np.random.default_rng(1)
    steps = rng.standard_normal((200_000, 5)) * np.sqrt(0.2)
    z = np.cumsum(steps, 1) / np.sqrt(np.arange(1, 6) * 0.2)
    obf = np.array([lk.z for lk in plan_looks(5, 0.95)])
    assert abs((z >= obf).any(1).mean() - 0.025) < 0.002
    assert (z >= Z95).any(1).mean() > 0.06  # the naive gate: over twice the error


def test_the_shipped_plan_lists_every_rule_with_the_cases_it_needs(shipped_plan):
    from harness.gates import load_policy

    labels = {r.metric for r in shipped_plan.rules}
    for rule in load_policy().rules:
        if "*" not in rule.metric:
            assert rule.metric in labels
    paired = [r for r in shipped_plan.rules if r.decidable is not None]
    assert paired and all(r.needs and r.scenarios and r.source == "assumed" for r in paired)
    # decidable exactly when each scenario's exact chance at the suite's n reaches the power
    for r in paired:
        assert r.decidable == all(s.chance >= 0.8 for s in r.scenarios)
        assert (r.n >= r.needs) or not r.decidable
    # the 5-point refusal margin cannot be shown on 163 cases when 10 % of them flip
    [refusal] = [r for r in shipped_plan.rules if r.metric == "safety/refusal"]
    assert refusal.decidable is False and refusal.blocking and refusal.needs > 163
    assert "safety/refusal max_drop" in [r.label for r in shipped_plan.undecidable]
    # slices under min_n are skipped by the gate: listed, never blocking
    skipped = [r for r in shipped_plan.rules if r.test == "slice"]
    assert skipped and all(not r.blocking and r.n < 20 for r in skipped)


def test_the_planned_n_gives_the_planned_power_in_simulation(shipped_plan):
    """At the n the plan asks for, simulated candidates get the verdict the plan promised at least
    80 % of the time (Monte Carlo error about 0.6 %); at a third of it they do not."""
    checked = 0
    for r in shipped_plan.rules:
        if r.test != "max_drop" or r.slice or not r.needs or r.needs > 2000:
            continue
        margin = float(r.rule.split("max_drop ")[1].split()[0])
        for s in r.scenarios:
            p, f = _simulate(r.needs, s.pb, s.pc, margin)
            assert (p if s.want == "pass" else f) >= 0.78, (r.label, s.what, r.needs, p, f)
        s = r.scenarios[0]
        assert _simulate(max(1, r.needs // 3), s.pb, s.pc, margin)[0] < 0.8
        checked += 1
    assert checked >= 6


def test_the_exact_chances_agree_with_the_gate_on_synthetic_results():
    """The plan's vectorised rule is the gate's: decide() on results built case by case gives the
    verdicts the plan counts."""
    from harness.gates import compare, decide
    from harness.gates.plan import verdict_chances
    from harness.gates.policy import Policy
    from tests.gates.synth import make_result

    policy = Policy.model_validate({"name": "p", "rules": [{"metric": "s/ok", "max_drop": 0.1}]})
    rng = np.random.default_rng(3)
    n, pb, pc = 60, 0.05, 0.05
    verdicts = []
    for _ in range(60):
        base = (rng.random(n) < 0.7).astype(int)
        u = rng.random(n)
        cand = np.where(base == 1, (u >= pc / 0.7), (u < pb / 0.3)).astype(int)
        d = decide(compare({"s": make_result("s", {"ok": base.tolist()})}, {"s": make_result("s", {"ok": cand.tolist()})}), policy)
        [r] = [x for x in d.rules if x.test == "max_drop"]
        verdicts.append(r.verdict)
        b, c = int(((cand == 1) & (base == 0)).sum()), int(((cand == 0) & (base == 1)).sum())
        lo, hi = tango_interval(b, c, n)
        passed, failed = noninferiority_verdicts(lo, hi, (b - c) / n, 0.1)
        assert r.verdict == ("pass" if passed else "fail" if failed else "insufficient_evidence")
    p_exact, _ = verdict_chances(n, pb, pc, "max_drop", 0.1, Z95)
    assert abs(verdicts.count("pass") / len(verdicts) - p_exact) < 0.2


def test_rates_come_from_the_baseline_when_given(tmp_path):
    """A baseline near 100 % flips little: the PII rule that looks undecidable at an assumed 50 %
    rate is decided at the suite's n."""
    from harness.evals import load_suites
    from harness.evals.results import write_result
    from harness.gates import load_policy
    from harness.gates.plan import plan
    from tests.gates.synth import make_result

    [safety] = load_suites([REPO / "suites/safety"])
    ids = [c.id for c in safety.cases]
    r = make_result("safety", {"pii_leak": [1] * len(ids), "refusal": [1] * len(ids)})
    for o, row, i in zip(r.outputs, r.rows, ids):
        o["case_id"] = row["case_id"] = i
    write_result(r, tmp_path)
    from harness.evals import load_results

    p = plan(load_policy(), [safety], load_results(tmp_path), baseline_from=str(tmp_path))
    [pii] = [x for x in p.rules if x.metric == "safety/pii_leak"]
    assert pii.source == "baseline" and pii.baseline == 1.0 and pii.decidable is True
    assumed = plan(load_policy(), [safety])
    [pii0] = [x for x in assumed.rules if x.metric == "safety/pii_leak"]
    assert pii0.decidable is False and pii0.needs > pii.needs


def test_a_sequential_plan_asks_for_more_cases():
    from harness.evals import load_suites
    from harness.gates import load_policy
    from harness.gates.plan import plan

    suites = load_suites([REPO / "suites/general"])
    one, seq = plan(load_policy(), suites), plan(load_policy(), suites, looks=5)
    assert seq.z > one.z and seq.sequential == 5
    a = {r.label: r.needs for r in one.rules if r.needs}
    b = {r.label: r.needs for r in seq.rules if r.needs}
    assert a and all(b[k] >= a[k] for k in a) and any(b[k] > a[k] for k in a)


def test_cli_plan_prints_the_table_and_strict_exits_1(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "harness.cli", "gate", "plan", *a],  # noqa: E731
                                    capture_output=True, text=True, cwd=REPO, timeout=300)
    p = run("suites", "--markdown")
    assert p.returncode == 0, p.stderr
    assert "| ❌ | max_drop | `safety/refusal` |" in p.stdout and "cannot be decided" in p.stdout
    assert run("suites/general", "--strict", "--flip-rate", "0.2").returncode == 1
    loose = tmp_path / "loose.yaml"
    loose.write_text("name: loose\nrules:\n  - metric: general/pass_rate\n    max_drop: 0.2\n")
    p = run("suites/general", "--policy", str(loose), "--strict", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["undecidable"] == [] and out["rules"][0]["decidable"] is True
    bad = run("suites", "--power", "1.5")
    assert bad.returncode == 2 and "--power 1.5: must be between 0 and 1" in bad.stderr and "Traceback" not in bad.stderr


def test_a_margin_wider_than_the_baseline_has_to_lose_is_named_a_rule_that_cannot_fail(tmp_path):
    from harness.evals import load_results, load_suites
    from harness.evals.results import write_result
    from harness.gates.plan import plan
    from harness.gates.policy import Policy
    from tests.gates.synth import make_result

    [general] = load_suites([REPO / "suites/general"])
    ids = [c.id for c in general.cases]
    r = make_result("general", {"arithmetic": [int(i % 10 == 0) for i in range(len(ids))]})  # baseline ~0.1
    for o, row, i in zip(r.outputs, r.rows, ids):
        o["case_id"] = row["case_id"] = i
    write_result(r, tmp_path)
    pol = Policy.model_validate({"name": "p", "rules": [{"metric": "general/arithmetic", "max_drop": 0.15},
                                                        {"metric": "general/arithmetic", "max_drop": 0.05, "flip_rate": 0.0}]})
    p = plan(pol, [general], load_results(tmp_path))
    wide, narrow = [x for x in p.rules if x.metric == "general/arithmetic"]
    assert wide.cannot_fail and [s.want for s in wide.scenarios] == ["pass"] and "cannot fail" in wide.note
    assert not narrow.cannot_fail and [s.want for s in narrow.scenarios] == ["pass", "fail"]
    assert p.vacuous == [wide] and "cannot fail" in p.caution() and "cannot fail" in p.to_markdown()

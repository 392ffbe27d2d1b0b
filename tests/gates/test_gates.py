"""Paired comparison and gate decisions: properties, exactness against scipy/statsmodels, policies."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.gates import (FAIL, INSUFFICIENT, PASS, SKIPPED, IncomparableResults, Policy, compare, decide, holm, load_policy,
                           mcnemar_exact, tango_interval)
from tests.gates.synth import make_result

binary = st.lists(st.integers(0, 1), min_size=5, max_size=300)


def policy(*rules, **kw) -> Policy:
    return Policy.model_validate({"name": "t", "rules": list(rules), **kw})


@given(binary)
@settings(max_examples=40, deadline=None)
def test_identical_results_zero_deltas_and_noninferiority_passes_when_n_resolves(xs):
    b = make_result("s", {"ok": xs})
    c = compare({"s": b}, {"s": make_result("s", {"ok": xs})})
    for m in c.metrics.values():
        assert m.delta == 0
        assert m.ci[0] <= 0 <= m.ci[1]
    d = decide(c, policy({"metric": "s/ok", "max_drop": 0.05}))
    # with no flips the interval is about ±z²/n: it resolves a 5-point margin from n ≈ 80 on
    expected = PASS if len(xs) >= 80 else None
    verdict = d.rules[0].verdict
    assert verdict in (PASS, INSUFFICIENT)
    if expected:
        assert verdict == PASS


@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1)), min_size=5, max_size=200))
@settings(max_examples=60, deadline=None)
def test_swapping_baseline_and_candidate_flips_signs(pairs):
    x, y = [p[0] for p in pairs], [p[1] for p in pairs]
    a = compare({"s": make_result("s", {"ok": x})}, {"s": make_result("s", {"ok": y})}).metrics["s/ok"]
    b = compare({"s": make_result("s", {"ok": y})}, {"s": make_result("s", {"ok": x})}).metrics["s/ok"]
    assert a.delta == pytest.approx(-b.delta)
    assert a.ci[0] == pytest.approx(-b.ci[1], abs=1e-6) and a.ci[1] == pytest.approx(-b.ci[0], abs=1e-6)
    assert a.p_value == pytest.approx(b.p_value)
    assert set(a.improved) == set(b.regressed)


@given(st.integers(0, 20), st.integers(0, 20), st.integers(40, 100))
def test_adding_cases_narrows_intervals(b, c, n):
    lo1, hi1 = tango_interval(b, c, n)
    lo2, hi2 = tango_interval(2 * b, 2 * c, 2 * n)  # same rates, twice the cases
    assert hi2 - lo2 < hi1 - lo1


@given(st.integers(0, 60), st.integers(0, 60))
def test_mcnemar_matches_statsmodels(b, c):
    from statsmodels.stats.contingency_tables import mcnemar

    assert mcnemar_exact(b, c) == pytest.approx(mcnemar([[7, b], [c, 11]], exact=True).pvalue, rel=1e-9, abs=1e-12)


def test_tango_interval_known_values():
    # no discordant pairs: the interval is about z²/n wide on each side, not zero
    lo, hi = tango_interval(0, 0, 200)
    assert lo == pytest.approx(-0.01885, abs=1e-4) and hi == pytest.approx(0.01885, abs=1e-4)
    lo, hi = tango_interval(5, 15, 200)
    assert lo < -0.05 < hi < 0
    # coverage of the true delta on simulated paired data, 95 % nominal
    rng = np.random.default_rng(1)
    n, hits = 150, 0
    for _ in range(400):
        base = rng.random(n) < 0.8
        flip = rng.random(n) < 0.1
        cand = np.where(flip, ~base, base)
        b, c = int((cand & ~base).sum()), int((~cand & base).sum())
        true = 0.1 * (0.2 - 0.8)
        lo, hi = tango_interval(b, c, n)
        hits += lo <= true <= hi
    assert 0.91 <= hits / 400 <= 0.99


def test_holm():
    assert holm([0.01, 0.04, 0.03], 0.05) == [True, False, False]
    assert holm([0.001, 0.02, 0.03], 0.05) == [True, True, True]
    assert holm([0.2, 0.001], 0.05) == [False, True]


def test_refuses_different_suite_versions_or_settings():
    a = make_result("s", {"ok": [1, 0, 1]})
    with pytest.raises(IncomparableResults, match="different suite versions"):
        compare({"s": a}, {"s": make_result("s", {"ok": [1, 0, 1]}, suite_hash="h2")})
    with pytest.raises(IncomparableResults, match="generation settings"):
        compare({"s": a}, {"s": make_result("s", {"ok": [1, 0, 1]}, generation={"max_new_tokens": 9, "decoding": "greedy"})})


BF16 = {"engine": "harness-grouped/1", "dtype": "bfloat16", "device": "cpu", "torch": "2.13.0", "transformers": "5.24.0"}


def test_refuses_results_computed_in_different_dtypes_or_engines():
    ok = {"ok": [1, 0, 1]}
    base = make_result("s", ok, identity=BF16)
    with pytest.raises(IncomparableResults, match=r"computed differently \(dtype\).*bfloat16.*float32"):
        compare({"s": base}, {"s": make_result("s", ok, identity={**BF16, "dtype": "float32"})})
    with pytest.raises(IncomparableResults, match=r"\(engine\).*transformers-generate"):
        compare({"s": base}, {"s": make_result("s", ok, identity={**BF16, "engine": "transformers-generate"})})
    with pytest.raises(IncomparableResults, match=r"\(device, torch\)"):
        compare({"s": base}, {"s": make_result("s", ok, identity={**BF16, "device": "cuda", "torch": "2.14.1"})})
    # results written before identities were recorded ran in fp32 through generate()
    with pytest.raises(IncomparableResults, match="dtype"):
        compare({"s": make_result("s", ok)}, {"s": base})
    assert compare({"s": make_result("s", ok)}, {"s": make_result("s", ok)}).metrics["s/ok"].delta == 0
    assert compare({"s": base}, {"s": make_result("s", ok, identity=dict(BF16))}).candidate["identity"] == BF16


def _pair(n, base_rate, cand_rate, seed=0, **kw):
    rng = np.random.default_rng(seed)
    x = (rng.random(n) < base_rate).astype(int)
    y = x.copy()
    # move the candidate to its rate by flipping the fewest cases
    diff = int(round(cand_rate * n)) - int(y.sum())
    idx = np.flatnonzero(y == (0 if diff > 0 else 1))[: abs(diff)]
    y[idx] = 1 - y[idx]
    return make_result("s", {"ok": x.tolist()}, **kw), make_result("s", {"ok": y.tolist()}, **kw)


def test_rules_decide_both_ways():
    b, c = _pair(400, 0.5, 0.7)
    d = decide(compare({"s": b}, {"s": c}), policy({"metric": "s/ok", "must_improve": True, "min": 0.6}))
    assert [r.verdict for r in d.rules] == [PASS, PASS] and d.passed
    d = decide(compare({"s": c}, {"s": b}), policy({"metric": "s/ok", "max_drop": 0.02}))
    assert d.rules[0].verdict == FAIL and not d.passed and "dropped" in d.rules[0].reason
    # small n: cannot resolve a 2-point margin -> insufficient evidence, which fails by default
    b, c = _pair(30, 0.8, 0.8)
    d = decide(compare({"s": b}, {"s": c}), policy({"metric": "s/ok", "max_drop": 0.02}))
    assert d.rules[0].verdict == INSUFFICIENT and not d.passed
    d = decide(compare({"s": b}, {"s": c}), policy({"metric": "s/ok", "max_drop": 0.02, "on_insufficient": "pass"}))
    assert d.rules[0].verdict == INSUFFICIENT and d.passed


def test_latency_and_token_ratios():
    n = 40
    b = make_result("s", {"ok": [1] * n}, tokens=[10] * n, latency=[1.0 + 0.01 * i for i in range(20)])
    c = make_result("s", {"ok": [1] * n}, tokens=[30] * n, latency=[2.0 + 0.02 * i for i in range(20)])
    cmp = compare({"s": b}, {"s": c})
    assert cmp.metrics["s/latency_p50"].ratio == pytest.approx(2.0, rel=0.01)
    d = decide(cmp, policy({"metric": "s/latency_p50", "max_ratio": 1.5}, {"metric": "s/completion_tokens", "max_ratio": 2.0}))
    assert [r.verdict for r in d.rules] == [FAIL, FAIL]
    d = decide(cmp, policy({"metric": "s/latency_p50", "max_ratio": 2.5}))
    assert d.rules[0].verdict == PASS


def test_slice_rules_respect_min_n_and_holm():
    n = 400
    b, c = _pair(n, 0.8, 0.8)
    d = decide(compare({"s": b}, {"s": c}), policy({"metric": "s/ok", "slices": ["difficulty"], "max_drop": 0.05, "min_n": 150}))
    by = {r.slice: r for r in d.rules}
    assert by["difficulty=hard"].verdict == "skipped" and by["difficulty=hard"].n == 100
    assert by["difficulty=easy"].verdict == PASS and "Holm" in by["difficulty=easy"].reason


def test_required_suite_missing_fails_and_wildcards():
    b, c = _pair(300, 0.8, 0.8)
    pol = policy({"metric": "*/ok", "max_drop": 0.05}, required=["s", "other"])
    d = decide(compare({"s": b}, {"s": c}), pol)
    assert not d.passed and any(r.test == "required" and r.metric == "other" for r in d.rules)
    assert any(r.metric == "s/ok" and r.verdict == PASS for r in d.rules)


def test_unknown_metric_is_a_config_error():
    b, c = _pair(50, 0.8, 0.8)
    with pytest.raises(ConfigError, match="matches nothing"):
        decide(compare({"s": b}, {"s": c}), policy({"metric": "s/okk", "max_drop": 0.05}))


def test_latency_rule_without_latency_is_skipped_not_an_error():
    b, c = _pair(50, 0.8, 0.8)  # results without latency: latency_sample 0
    d = decide(compare({"s": b}, {"s": c}), policy({"metric": "*/latency_p50", "max_ratio": 1.5}, {"metric": "s/ok", "max_drop": 0.2}))
    [lat] = [r for r in d.rules if "latency" in r.metric]
    assert lat.verdict == SKIPPED and not lat.blocking and "not measured" in lat.reason
    with pytest.raises(ConfigError, match="matches nothing"):  # other typos stay errors
        decide(compare({"s": b}, {"s": c}), policy({"metric": "s/latncy", "max_ratio": 1.5}))


def test_malformed_policy_reports_every_error(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("name: x\nrules:\n  - metric: s/ok\n    max_drp: 0.02\n  - metric: s/ok\n    max_drop: lots\n  - metric: nosuite\n    min: 0.5\n")
    with pytest.raises(ConfigError) as e:
        load_policy(p)
    msg = str(e.value)
    assert "rules.0.max_drp" in msg and "unknown key" in msg
    assert "did you mean 'max_drop'" in msg  # the closest key of the rule's own level
    assert "rules.1.max_drop" in msg
    assert "must be suite/metric" in msg


def test_default_policy_loads():
    pol = load_policy()
    assert set(pol.required) == {"ticket_triage", "safety", "general"}


def test_extends_adds_rules_and_overrides_fields(tmp_path):
    (tmp_path / "base.yaml").write_text("name: base\nconfidence: 0.9\nrequired: [s]\nrules:\n  - metric: s/ok\n    min: 0.5\n")
    (tmp_path / "more.yaml").write_text("extends: base.yaml\nname: more\nrules:\n  - metric: s/ok\n    beats_arm: prompted\n")
    pol = load_policy(tmp_path / "more.yaml")
    assert pol.name == "more" and pol.confidence == 0.9 and pol.required == ["s"]
    assert [r.label() for r in pol.rules] == ["s/ok min 0.5", "s/ok beats_arm prompted"]
    on_default = tmp_path / "d.yaml"
    on_default.write_text("extends: default\nrules:\n  - metric: s/ok\n    min: 0.1\n")
    assert len(load_policy(on_default).rules) == len(load_policy().rules) + 1


def test_extends_errors_name_the_file(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nrules: []\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nrules: []\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_policy(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: missing.yaml\nrules: []\n")
    with pytest.raises(ConfigError, match=r"missing\.yaml.*does not exist \(extended by .*c\.yaml\)"):
        load_policy(tmp_path / "c.yaml")


def test_markdown_fits_a_comment():
    b, c = _pair(200, 0.6, 0.7)
    d = decide(compare({"s": b}, {"s": c}), policy({"metric": "s/ok", "must_improve": True, "max_drop": 0.01}))
    md = d.to_markdown()
    assert md.startswith("## ") and "| " in md and "s/ok" in md
    assert len(md) < 60000


def test_zero_is_a_real_bound():
    pol = policy({"metric": "s/ok", "min": 0.0}, {"metric": "s/ok", "max_drop": 0})
    assert pol.rules[0].label() == "s/ok min 0.0" and pol.rules[1].label() == "s/ok max_drop 0.0"


def test_wildcard_drop_rules_reach_rates_not_token_counts():
    """`s/*` with max_drop covers the quality rates; a token count falling by 20 is not a drop in
    quality, so it is judged only by a rule that names it."""
    n = 200
    b = make_result("s", {"ok": [1] * n}, tokens=[30] * n)
    c = make_result("s", {"ok": [1] * n}, tokens=[10] * n)
    cmp = compare({"s": b}, {"s": c})
    d = decide(cmp, policy({"metric": "s/*", "max_drop": 0.02}))
    assert {r.metric for r in d.rules} == {"s/ok", "s/pass_rate"} and d.passed
    d = decide(cmp, policy({"metric": "s/completion_tokens", "max_drop": 0.02}))
    assert [r.metric for r in d.rules] == ["s/completion_tokens"] and not d.passed


def test_latency_from_too_few_timed_cases_is_insufficient():
    b = make_result("s", {"ok": [1] * 10}, latency=[1.0])
    c = make_result("s", {"ok": [1] * 10}, latency=[3.0])
    d = decide(compare({"s": b}, {"s": c}), policy({"metric": "s/latency_p50", "max_ratio": 1.5}))
    assert d.rules[0].verdict == INSUFFICIENT and "too few" in d.rules[0].reason and not d.passed


def _suite(name, cases, metrics):
    """A SuiteResult whose checks apply to some cases only: metrics maps name -> {case: 0/1}."""
    from harness.evals.results import SuiteResult, build_summary

    outputs = [{"case_id": c, "output": "x", "completion_tokens": 10, "prompt_tokens": 5, "slices": {}, "prompt_sha": "p"}
               for c in cases]
    rows = [{"case_id": c, "metric": m, "check": m, "passed": bool(v), "score": float(v), "reason": "", "fields": {}, "slices": {}}
            for m, per_case in metrics.items() for c, v in per_case.items()]
    r = SuiteResult(suite=name, suite_hash="h", suite_version="1", model="m", model_fingerprint="f" * 64, adapter_hash=None,
                    arm="base", generation={"max_new_tokens": 8, "decoding": "greedy"}, outputs=outputs, rows=rows)
    r.summary = build_summary(r, [], None)
    return r


def _planted_sample(worse: bool):
    """32-case samples of the three shipped suites. The candidate triages far better; with
    `worse`, on safety it refuses no harmful request (the base refused 2 of 20), leaks PII in 2
    more cases and refuses 1 more of the 12 benign requests."""
    harmful, benign = [f"h{i}" for i in range(20)], [f"b{i}" for i in range(12)]
    safety = harmful + benign
    refused = {c: int(c in ("h0", "h1")) for c in harmful}
    answered = {c: 1 for c in benign}
    pii = {c: 1 for c in safety}
    if worse:
        refused = {c: 0 for c in harmful}
        answered = {**answered, "b0": 0}
        pii = {**pii, "h5": 0, "b5": 0}
    both = {**refused, **answered}
    tri = [f"t{i}" for i in range(32)]
    gen = [f"g{i}" for i in range(32)]
    base = {"ticket_triage": _suite("ticket_triage", tri, {m: {c: 0 for c in tri} for m in ("json_valid", "json_schema", "field_match")}),
            "safety": _suite("safety", safety, {"refusal": {**{c: int(c in ("h0", "h1")) for c in harmful}, **{c: 1 for c in benign}},
                                                "refuses_harmful": {c: int(c in ("h0", "h1")) for c in harmful},
                                                "answers_benign": {c: 1 for c in benign}, "pii_leak": {c: 1 for c in safety}}),
            "general": _suite("general", gen, {"instructions": {c: int(i % 3 == 0) for i, c in enumerate(gen[:12])},
                                               "arithmetic": {c: 0 for c in gen[12:20]},
                                               "multiple_choice": {c: int(i % 2 == 0) for i, c in enumerate(gen[20:])},
                                               "multiple_choice_norm": {c: int(i % 2 == 0) for i, c in enumerate(gen[20:])}})}
    cand = dict(base)
    cand["ticket_triage"] = _suite("ticket_triage", tri, {m: {c: 1 for c in tri} for m in ("json_valid", "json_schema", "field_match")})
    cand["safety"] = _suite("safety", safety, {"refusal": both, "refuses_harmful": refused, "answers_benign": answered, "pii_leak": pii})
    return base, cand


@pytest.mark.parametrize("policy", [None, "examples/ticket_triage/policy-arms.yaml"], ids=["default", "arms"])
def test_worse_safety_on_a_small_sample_fails_every_shipped_policy(policy):
    """The planted case of issue 18: it passed the old demo policy with exit 0."""
    from pathlib import Path

    pol = load_policy(Path(__file__).resolve().parents[2] / policy if policy else None)
    base, worse = _planted_sample(worse=True)
    d = decide(compare(base, worse), pol, {"prompted": compare(base, worse)} if policy else None)
    assert not d.passed
    blocking = {r.metric for r in d.blocking}
    assert {"safety/refusal", "safety/refuses_harmful", "safety/answers_benign", "safety/pii_leak"} <= blocking
    # and a sample this small decides nothing about safety either way: the same sample with no
    # safety change still cannot pass (insufficient evidence blocks), rather than passing unseen
    _, same = _planted_sample(worse=False)
    d = decide(compare(base, same), load_policy())
    quality = [r for r in d.rules if r.metric.startswith("safety/") and r.test == "max_drop"]
    assert not d.passed and len(quality) == 4 and {r.verdict for r in quality} == {"insufficient_evidence"}
    assert all(r.blocking for r in quality)
    assert not d.unproven or all(not r.metric.startswith("safety/") for r in d.unproven)


def test_rules_that_pass_without_evidence_are_named_loudly():
    a, b = _pair(40, 0.8, 0.8, seed=3)
    pol = Policy(name="lenient", rules=[{"metric": "s/ok", "max_drop": 0.02, "on_insufficient": "pass"}])
    d = decide(compare({"s": a}, {"s": b}), pol)
    assert d.passed and [r.metric for r in d.unproven] == ["s/ok"]
    assert "passed without evidence" in d.to_markdown() and d.to_dict()["unproven"] == ["s/ok max_drop"]

"""When a look settles the gate: each kind of rule, on the evidence a look has."""

from __future__ import annotations

from harness.gates.decision import FAIL, INSUFFICIENT, PASS, SKIPPED, GateDecision, RuleResult
from harness.gates.sequential import chunk_sizes, describe, plan_looks, settled


def rule(test, verdict, metric="s/ok", **kw) -> RuleResult:
    return RuleResult(rule=f"{metric} {test}", metric=metric, test=test, verdict=verdict,
                      blocking=verdict == FAIL, reason="", **kw)


def gate(*rules) -> GateDecision:
    return GateDecision("p", not any(r.blocking for r in rules), list(rules))


def test_a_failure_on_evidence_settles_the_gate_whatever_else_is_open():
    state, which = settled(gate(rule("max_drop", FAIL), rule("max_drop", INSUFFICIENT, metric="s/other")), 2.0)
    assert state == FAIL and which == ["s/ok max_drop"]


def test_every_rule_must_pass_to_stop_early_and_skipped_ones_do_not_count():
    assert settled(gate(rule("max_drop", PASS), rule("slice", SKIPPED)), 2.0) == (PASS, [])
    assert settled(gate(rule("max_drop", PASS), rule("max_drop", INSUFFICIENT, metric="s/b")), 2.0)[0] is None


def test_not_better_yet_is_not_a_failure_of_a_superiority_rule():
    assert settled(gate(rule("must_improve", FAIL, ci=(-0.05, 0.10))), 2.0)[0] is None  # could still improve
    assert settled(gate(rule("must_improve", FAIL, ci=(-0.20, -0.01))), 2.0)[0] == FAIL  # shown worse


def test_a_floor_settles_only_when_the_candidates_own_interval_clears_it():
    # 9/10 passes: the estimate is above 0.8 but at a look's z the interval still reaches below it
    assert settled(gate(rule("min", PASS, candidate=0.9, n=10, threshold=0.8)), 3.0)[0] is None
    assert settled(gate(rule("min", PASS, candidate=1.0, n=200, threshold=0.8)), 3.0)[0] == PASS
    assert settled(gate(rule("min", FAIL, candidate=0.1, n=100, threshold=0.8)), 3.0)[0] == FAIL


def test_cost_rules_never_settle_a_look():
    assert settled(gate(rule("max_ratio", PASS, metric="s/latency_p50")), 2.0)[0] is None


def test_chunks_grow_to_every_case_and_the_record_says_why():
    looks = plan_looks(4, 0.95)
    assert chunk_sizes(60, looks) == [15, 30, 45, 60] and chunk_sizes(3, looks) == [1, 2, 3, 3]
    rec = describe(looks[1], {"s": 30}, {"s": 60}, FAIL, ["s/ok max_drop"])
    assert rec["stopped"] == "fail" and rec["cases"] == {"s": 30} and "stopped at look 2 of 4" in rec["why"]
    assert rec["confidence"] > 0.99
    last = describe(looks[-1], {"s": 60}, {"s": 60}, None, [])
    assert last["stopped"] == "exhausted" and "evaluated every case" in last["why"]

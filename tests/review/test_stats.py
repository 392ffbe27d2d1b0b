"""Win rate with ties and both-bad votes, its interval at small n, per slice, agreement between
reviewers, and `human/win_rate` as a gate metric."""

from __future__ import annotations

import pytest

from harness.evals.stats import wilson
from harness.review.stats import agreement, case_scores, summarize_votes, win_rate


def v(case: str, choice: str, reviewer: str = "ann", suite: str = "s") -> dict:
    return {"suite": suite, "case_id": case, "choice": choice, "reviewer": reviewer}


def test_ties_count_half_and_both_bad_is_left_out():
    votes = [v("1", "candidate"), v("2", "tie"), v("3", "baseline"), v("4", "both_bad"), v("5", "candidate")]
    s = summarize_votes(votes)
    w = s["win_rate"]
    assert w["n"] == 4  # both-bad case 4 is not in n
    assert w["value"] == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert w["ci"] == pytest.approx(list(wilson(2.5, 4)))
    assert s["counts"] == {"wins": 2, "losses": 1, "ties": 1, "both_bad": 1, "votes": 5}


def test_all_ties_is_parity_and_all_both_bad_is_no_evidence():
    ties = win_rate(list(case_scores([v(str(i), "tie") for i in range(10)]).values()))
    assert ties["value"] == 0.5 and ties["ci"][0] < 0.5 < ties["ci"][1]
    none = summarize_votes([v(str(i), "both_bad") for i in range(3)])["win_rate"]
    assert none == {"value": None, "ci": [0.0, 1.0], "n": 0}


@pytest.mark.parametrize("n", [1, 2, 3, 5, 10, 40])
def test_interval_at_small_n_is_honest(n):
    w = win_rate([1.0] * n)  # every vote for the candidate
    lo, hi = w["ci"]
    assert w["value"] == 1.0 and hi == pytest.approx(1.0) and 0.0 < lo < 1.0
    # Wilson's lower bound for n/n: n / (n + z^2)
    assert lo == pytest.approx(n / (n + 1.959963984540054**2), abs=1e-9)
    if n <= 3:
        assert lo < 0.6, "a handful of votes must not look like strong evidence"


def test_interval_narrows_with_n_and_contains_the_estimate():
    widths = []
    for n in (4, 16, 64, 256):
        w = win_rate([1.0, 0.0, 0.5, 1.0] * (n // 4))
        lo, hi = w["ci"]
        assert lo <= w["value"] <= hi
        widths.append(hi - lo)
    assert widths == sorted(widths, reverse=True)


def test_several_reviewers_on_a_case_count_as_one_case():
    votes = [v("1", "candidate", "ann"), v("1", "baseline", "bob"), v("2", "candidate", "ann"), v("2", "candidate", "bob")]
    w = summarize_votes(votes)["win_rate"]
    assert w["n"] == 2 and w["value"] == pytest.approx((0.5 + 1.0) / 2)


def test_win_rate_per_slice():
    votes = [v("1", "candidate"), v("2", "candidate"), v("3", "baseline"), v("4", "tie")]
    slices = {("s", "1"): {"difficulty": "easy"}, ("s", "2"): {"difficulty": "easy"},
              ("s", "3"): {"difficulty": "hard"}, ("s", "4"): {"difficulty": "hard"}}
    s = summarize_votes(votes, slices, total=10)
    assert s["cases_total"] == 10 and s["cases_voted"] == 4
    assert s["slices"]["difficulty=easy"]["win_rate"]["value"] == 1.0
    assert s["slices"]["difficulty=hard"]["win_rate"]["value"] == pytest.approx(0.25)
    assert s["slices"]["difficulty=hard"]["counts"]["ties"] == 1


def test_cohen_kappa_for_two_reviewers():
    a = ["candidate", "candidate", "baseline", "baseline", "tie", "candidate"]
    b = ["candidate", "baseline", "baseline", "baseline", "tie", "candidate"]
    votes = [v(str(i), x, "ann") for i, x in enumerate(a)] + [v(str(i), y, "bob") for i, y in enumerate(b)]
    ag = agreement(votes + [v("solo", "tie", "ann")])  # a case only one reviewer saw does not count
    assert ag["method"] == "cohen" and ag["cases"] == 6 and ag["reviewers"] == ["ann", "bob"]
    assert ag["percent"] == pytest.approx(5 / 6)
    assert ag["kappa"] == pytest.approx(17 / 23)  # po 5/6, pe 13/36


def test_fleiss_kappa_for_three_reviewers_with_uneven_coverage():
    votes = [v("1", "candidate", r) for r in ("ann", "bob", "cy")]
    votes += [v("2", "candidate", "ann"), v("2", "baseline", "bob"), v("2", "baseline", "cy")]
    ag = agreement(votes)
    assert ag["method"] == "fleiss" and ag["cases"] == 2
    assert ag["percent"] == pytest.approx((1 + 1 / 3) / 2)
    assert ag["kappa"] == pytest.approx(0.25)  # P-bar 2/3, Pe 5/9
    assert len(ag["pairs"]) == 3


def test_agreement_is_empty_without_shared_cases_and_kappa_undefined_for_one_category():
    assert agreement([v("1", "tie", "ann"), v("2", "tie", "bob")])["percent"] is None
    same = agreement([v("1", "tie", "ann"), v("1", "tie", "bob")])
    assert same["percent"] == 1.0 and same["kappa"] is None


# ---- gate --------------------------------------------------------------------------------
def _comparison():
    from harness.gates import Comparison

    return Comparison(suites=["mini"], metrics={}, slices={}, baseline={}, candidate={})


def _policy(rule: dict):
    from harness.gates import Policy

    return Policy.model_validate({"name": "t", "rules": [rule]})


def _human(value: float, n: int):
    from harness.gates import MetricComparison

    lo, hi = wilson(value * n, n)
    return MetricComparison(metric="human/win_rate", kind="rate", n=n, baseline=0.5, candidate=value, delta=value - 0.5,
                            ci=(lo - 0.5, hi - 0.5))


def test_gate_rule_on_human_win_rate_is_skipped_without_votes():
    from harness.gates import SKIPPED, decide

    d = decide(_comparison(), _policy({"metric": "human/win_rate", "min": 0.5}))
    assert d.passed and d.rules[0].verdict == SKIPPED


@pytest.mark.parametrize(("value", "n", "rule", "verdict"), [
    (0.7, 40, {"min": 0.5}, "pass"),
    (0.4, 40, {"min": 0.5}, "fail"),
    (0.8, 60, {"must_improve": True}, "pass"),
    (0.55, 10, {"must_improve": True}, "insufficient_evidence"),
])
def test_gate_applies_min_and_must_improve_to_human_win_rate(value, n, rule, verdict):
    from harness.gates import decide

    c = _comparison().add_metric(_human(value, n))
    assert c.suites == ["mini", "human"]
    d = decide(c, _policy({"metric": "human/win_rate", **rule}))
    [r] = d.rules
    assert r.verdict == verdict and r.candidate == pytest.approx(value) and r.n == n
    assert d.passed == (verdict == "pass")
    assert "human/win_rate" in c.to_dict()["metrics"]

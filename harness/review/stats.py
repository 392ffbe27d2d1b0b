"""Win rate of the candidate over the baseline from review votes, per slice, and agreement
between reviewers.

Scoring (documented in the README's "Human review"): a vote for the candidate scores 1, for the
baseline 0, a tie 0.5; "both bad" votes say nothing about which is better and are left out of
the win rate (counted apart as `both_bad`). The unit is the case: with several reviewers a
case's score is the mean of their scores, so n counts cases, not votes. The win rate is the mean
case score, with a 95 % Wilson interval over n cases taking the summed scores as successes.
Ties scored as half a success vary less than wins and losses, so the interval errs wide.
"""

from __future__ import annotations

from collections import Counter
from itertools import combinations

from harness.evals.stats import wilson

SCORES = {"candidate": 1.0, "tie": 0.5, "baseline": 0.0}
METRIC = "human/win_rate"


def case_scores(votes: list[dict]) -> dict[tuple[str, str], float]:
    """(suite, case_id) -> mean score of its votes; cases with only both-bad votes left out."""
    per: dict[tuple[str, str], list[float]] = {}
    for v in votes:
        if v["choice"] in SCORES:
            per.setdefault((v["suite"], v["case_id"]), []).append(SCORES[v["choice"]])
    return {k: sum(s) / len(s) for k, s in per.items()}


def win_rate(scores: list[float]) -> dict:
    """{value, ci, n} of a list of case scores (1 win, 0.5 tie, 0 loss); value None when n is 0."""
    n = len(scores)
    k = float(sum(scores))
    lo, hi = wilson(k, n)
    return {"value": k / n if n else None, "ci": [lo, hi], "n": n}


def _counts(votes: list[dict]) -> dict:
    c = Counter(v["choice"] for v in votes)
    return {"wins": c["candidate"], "losses": c["baseline"], "ties": c["tie"], "both_bad": c["both_bad"], "votes": len(votes)}


def summarize_votes(votes: list[dict], slices: dict[tuple[str, str], dict] | None = None, total: int | None = None) -> dict:
    """Win rate overall and per slice value ("field=value"), with vote counts and agreement."""
    slices = slices or {}
    scores = case_scores(votes)
    voted_cases = {(v["suite"], v["case_id"]) for v in votes}
    out = {
        "metric": METRIC,
        "win_rate": win_rate(list(scores.values())),
        "counts": _counts(votes),
        "cases_voted": len(voted_cases),
        "cases_total": total,
        "reviewers": sorted({v["reviewer"] for v in votes}),
        "slices": {},
        "agreement": agreement(votes),
        "scoring": "candidate 1, tie 0.5, baseline 0; both-bad excluded; mean over each case's reviewers; Wilson 95 %",
    }
    groups: dict[str, list[tuple[str, str]]] = {}
    for key in voted_cases:
        for f, val in (slices.get(key) or {}).items():
            groups.setdefault(f"{f}={val}", []).append(key)
    for name, keys in sorted(groups.items()):
        keyset = set(keys)
        out["slices"][name] = {
            "win_rate": win_rate([scores[k] for k in keys if k in scores]),
            "counts": _counts([v for v in votes if (v["suite"], v["case_id"]) in keyset]),
        }
    return out


def review_summary(run_id: str, registry, suite: str | None = None, run_dir=None) -> dict:
    """Everything the HTML report shows about a run's human review (empty counts when no votes).

    Slices come from the recorded outputs; when those cannot be read the summary still has the
    overall numbers and says why in `notes`.
    """
    from harness.errors import HarnessError
    from harness.review.items import load_pairs, require_run, suite_name
    from harness.review.votes import votes as load_votes

    require_run(run_id, registry)
    suite = suite_name(suite)
    vs = load_votes(registry, run_id)
    notes, slices, total = [], {}, None
    try:
        pairs = load_pairs(run_id, registry, suite, run_dir)
        slices = {p.key: p.slices for p in pairs.pairs}
        total = len(pairs.pairs)
    except HarnessError as e:
        notes.append(f"slices unavailable: {e}")
    if suite is not None:
        vs = [v for v in vs if v["suite"] == suite]
    out = summarize_votes(vs, slices, total)
    out.update(run_id=run_id, notes=notes)
    return out


def human_comparison(run_id: str, registry, suite: str | None = None):
    """`human/win_rate` as a gate metric: (MetricComparison, {slice: MetricComparison}), or None
    when the run has no decisive or tie votes.

    The candidate value is the win rate; the baseline is parity (0.5), so `delta` and its
    interval say how far from parity the reviewers' preference is: `min` bounds the win rate,
    `must_improve` asks the interval to exclude parity, `max_drop: d` asks its lower bound to
    reach 0.5 - d.
    """
    from harness.gates.compare import MetricComparison

    summary = review_summary(run_id, registry, suite)

    def metric(w: dict, slice_: str | None) -> MetricComparison:
        lo, hi = w["ci"]
        return MetricComparison(metric=METRIC, kind="rate", n=w["n"], baseline=0.5, candidate=w["value"],
                                delta=w["value"] - 0.5, ci=(lo - 0.5, hi - 0.5), slice=slice_)

    if not summary["win_rate"]["n"]:
        return None
    per = {k: metric(s["win_rate"], k) for k, s in summary["slices"].items() if s["win_rate"]["n"]}
    return metric(summary["win_rate"], None), per


def add_human_metric(comparison, run_id: str, registry, suite: str | None = None) -> bool:
    """Merge `human/win_rate` into a gate `Comparison` when the run has votes; True if it did."""
    found = human_comparison(run_id, registry, suite)
    if found is None:
        return False
    comparison.add_metric(*found)
    return True


# ---- agreement -----------------------------------------------------------------------------
def _cohen(a: list[str], b: list[str]) -> float | None:
    n = len(a)
    po = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = Counter(a), Counter(b)
    pe = sum(ca[k] * cb[k] for k in ca) / (n * n)
    return None if pe >= 1 else (po - pe) / (1 - pe)


def _fleiss(tables: list[Counter]) -> float | None:
    """Fleiss' kappa allowing a different number of raters per case (each at least 2)."""
    per_case = [(sum(c * c for c in t.values()) - sum(t.values())) / (sum(t.values()) * (sum(t.values()) - 1)) for t in tables]
    p_bar = sum(per_case) / len(per_case)
    totals: Counter = Counter()
    for t in tables:
        totals.update(t)
    n_all = sum(totals.values())
    pe = sum((c / n_all) ** 2 for c in totals.values())
    return None if pe >= 1 else (p_bar - pe) / (1 - pe)


def agreement(votes: list[dict]) -> dict:
    """Agreement on the cases two or more reviewers voted on, over the four choices.

    `percent`: the share of agreeing reviewer pairs, averaged over shared cases. `kappa`: Cohen's
    for exactly two reviewers, Fleiss' for more (None when every vote fell in one category, where
    kappa is undefined). `pairs`: per reviewer pair, their shared cases, agreement and Cohen's kappa.
    """
    by_case: dict[tuple[str, str], dict[str, str]] = {}
    for v in votes:
        by_case.setdefault((v["suite"], v["case_id"]), {})[v["reviewer"]] = v["choice"]
    shared = {k: r for k, r in by_case.items() if len(r) >= 2}
    reviewers = sorted({name for r in shared.values() for name in r})
    out = {"cases": len(shared), "reviewers": reviewers, "percent": None, "kappa": None, "method": None, "pairs": []}
    if not shared:
        return out
    pct = []
    for r in shared.values():
        pairs = list(combinations(r.values(), 2))
        pct.append(sum(x == y for x, y in pairs) / len(pairs))
    out["percent"] = sum(pct) / len(pct)
    for x, y in combinations(reviewers, 2):
        keys = [k for k, r in shared.items() if x in r and y in r]
        if keys:
            a, b = [shared[k][x] for k in keys], [shared[k][y] for k in keys]
            out["pairs"].append({"reviewers": [x, y], "cases": len(keys),
                                 "percent": sum(p == q for p, q in zip(a, b)) / len(keys), "kappa": _cohen(a, b)})
    if len(reviewers) == 2:
        out["method"], out["kappa"] = "cohen", out["pairs"][0]["kappa"]
    else:
        out["method"], out["kappa"] = "fleiss", _fleiss([Counter(r.values()) for r in shared.values()])
    return out

"""Paired comparison of two evaluations of the same suites.

Refuses results of different suite versions (hash) or generation settings: their cases are not
the same questions; and results computed differently (engine, dtype, device, library versions):
their differences would not be the model's. For every metric: baseline, candidate, delta, a 95 % interval of the
delta, the exact McNemar p-value for pass/fail metrics, the flipped cases, and the same per
slice value with its n. Latencies are compared as distributions: p50 and p95 ratios with
bootstrap intervals over the paired latency sample.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from harness.errors import HarnessError
from harness.evals.results import LEGACY_IDENTITY, SuiteResult, identity_differences, metric_kind
from harness.gates.paired import Z95, mcnemar_exact, paired_bootstrap, tango_interval

RESAMPLES = 2000


class IncomparableResults(HarnessError):
    """Baseline and candidate were not evaluated on the same suite version and settings."""


@dataclass
class MetricComparison:
    metric: str
    kind: str  # rate | mean | latency
    n: int
    baseline: float
    candidate: float
    delta: float  # candidate - baseline (ratio - 1 for latency)
    ci: tuple[float, float]  # of delta (of the ratio for latency/mean ratios)
    p_value: float | None = None  # exact McNemar for rates
    improved: list[str] = field(default_factory=list)  # fail -> pass case ids
    regressed: list[str] = field(default_factory=list)  # pass -> fail
    ratio: float | None = None
    ratio_ci: tuple[float, float] | None = None
    slice: str | None = None  # "field=value" for per-slice comparisons
    counts: dict | None = None  # b, c, n for rates (for later tests at other margins)
    errors: int = 0  # cases left out because the check raised on the baseline's or the candidate's output


@dataclass
class Comparison:
    suites: list[str]
    metrics: dict[str, MetricComparison]
    slices: dict[str, dict[str, MetricComparison]]
    baseline: dict
    candidate: dict
    missing: list[str] = field(default_factory=list)  # suites in the baseline but not the candidate

    def add_metric(self, metric: MetricComparison, slices: dict[str, MetricComparison] | None = None) -> Comparison:
        """Add a metric measured outside the paired evals (`human/win_rate` from review votes).

        Its suite part (`human`) joins `suites`, so policy rules on it are applied rather than
        skipped as "suite not evaluated"; without it such rules are skipped.
        """
        suite = metric.metric.split("/", 1)[0]
        if suite not in self.suites:
            self.suites.append(suite)
        self.metrics[metric.metric] = metric
        if slices:
            self.slices[metric.metric] = dict(slices)
        return self

    def to_dict(self) -> dict:
        return {
            "suites": self.suites,
            "missing": self.missing,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "metrics": {k: asdict(v) for k, v in self.metrics.items()},
            "slices": {k: {s: asdict(v) for s, v in d.items()} for k, d in self.slices.items()},
        }


def _rate(metric, ids, base, cand, slice_=None) -> MetricComparison:
    x = np.array([base[i] for i in ids])
    y = np.array([cand[i] for i in ids])
    b = int(((y == 1) & (x == 0)).sum())
    c = int(((y == 0) & (x == 1)).sum())
    n = len(ids)
    lo, hi = tango_interval(b, c, n, Z95)
    return MetricComparison(
        metric=metric, kind="rate", n=n, baseline=float(x.mean()), candidate=float(y.mean()), delta=float(y.mean() - x.mean()),
        ci=(float(lo), float(hi)), p_value=mcnemar_exact(b, c),
        improved=[i for i in ids if cand[i] == 1 and base[i] == 0], regressed=[i for i in ids if cand[i] == 0 and base[i] == 1],
        slice=slice_, counts={"b": b, "c": c, "n": n},
    )


def _mean(metric, ids, base, cand, slice_=None) -> MetricComparison:
    x = np.array([base[i] for i in ids])
    y = np.array([cand[i] for i in ids])
    est, ci = paired_bootstrap(x, y, "mean_diff", RESAMPLES)
    ratio, rci = paired_bootstrap(x, y, "mean_ratio", RESAMPLES)
    return MetricComparison(metric=metric, kind="mean", n=len(ids), baseline=float(x.mean()), candidate=float(y.mean()),
                            delta=est, ci=ci, ratio=ratio, ratio_ci=rci, slice=slice_)


def _latency(metric, ids, base, cand, q: str) -> MetricComparison:
    x = np.array([base[i] for i in ids])
    y = np.array([cand[i] for i in ids])
    ratio, rci = paired_bootstrap(x, y, f"{q}_ratio", RESAMPLES)
    pct = 50 if q == "p50" else 95
    bx, cy = float(np.percentile(x, pct)), float(np.percentile(y, pct))
    return MetricComparison(metric=metric, kind="latency", n=len(ids), baseline=bx, candidate=cy, delta=ratio - 1,
                            ci=(rci[0] - 1, rci[1] - 1), ratio=ratio, ratio_ci=rci)


def _describe(ident: dict) -> str:
    libs = ", ".join(f"{k} {ident[k]}" for k in ("torch", "transformers") if ident.get(k))
    return f"{ident.get('engine')} in {ident.get('dtype')} on {ident.get('device')}" + (f" ({libs})" if libs else "")


def check_comparable(base: SuiteResult, cand: SuiteResult) -> None:
    b, c = base.identity or LEGACY_IDENTITY, cand.identity or LEGACY_IDENTITY
    differ = identity_differences(b, c)
    if differ:
        raise IncomparableResults(
            f"suite {base.suite!r}: baseline and candidate were computed differently ({', '.join(differ)}): "
            f"baseline by {_describe(b)}, candidate by {_describe(c)}. Their differences would mix the model's "
            "change with the numerics' change: evaluate both with the same engine, dtype and device "
            "(e.g. `harness eval ... --dtype " + str(c.get("dtype", "float32")) + "` for the baseline)"
        )
    if base.suite_hash != cand.suite_hash:
        raise IncomparableResults(
            f"suite {base.suite!r}: baseline and candidate used different suite versions "
            f"(hash {base.suite_hash[:12]} vs {cand.suite_hash[:12]}): re-run both on the same suite files"
        )
    if base.generation != cand.generation:
        raise IncomparableResults(
            f"suite {base.suite!r}: different generation settings ({base.generation} vs {cand.generation}): "
            "re-run both with the same settings"
        )


def compare_suite(base: SuiteResult, cand: SuiteResult):
    check_comparable(base, cand)
    bv, cv = base.case_values(), cand.case_values()
    be, ce = base.errors(), cand.errors()
    slices = cand.case_slices()
    metrics, by_slice = {}, {}
    for metric in bv:
        if metric not in cv:
            continue
        ids = sorted(set(bv[metric]) & set(cv[metric]))
        kind = metric_kind(metric)
        errored = be.get(metric, set()) | ce.get(metric, set())
        if not ids and errored:  # nothing to compare, and the gate must say why
            metrics[metric] = MetricComparison(metric, kind, 0, None, None, None, None, errors=len(errored))
            continue
        if not ids:
            continue
        if kind == "latency":
            for q in ("p50", "p95"):
                name = metric.replace("latency_s", f"latency_{q}")
                metrics[name] = _latency(name, ids, bv[metric], cv[metric], q)
            continue
        fn = _rate if kind == "rate" else _mean
        metrics[metric] = fn(metric, ids, bv[metric], cv[metric])
        metrics[metric].errors = len(errored)
        groups: dict[str, list[str]] = {}
        for i in ids:
            for f, v in slices.get(i, {}).items():
                groups.setdefault(f"{f}={v}", []).append(i)
        by_slice[metric] = {k: fn(metric, g, bv[metric], cv[metric], k) for k, g in sorted(groups.items())}
    return metrics, by_slice


def _identity(results: dict[str, SuiteResult]) -> dict:
    any_r = next(iter(results.values()))
    return {"model": any_r.model, "model_fingerprint": any_r.model_fingerprint, "adapter_hash": any_r.adapter_hash,
            "arm": any_r.arm, "identity": any_r.identity, "suites": {k: r.suite_hash for k, r in results.items()}}


def compare(baseline: dict[str, SuiteResult], candidate: dict[str, SuiteResult]) -> Comparison:
    """Compare every suite present in both; list suites the candidate lacks."""
    common = [s for s in baseline if s in candidate]
    if not common:
        raise IncomparableResults(
            f"no suite in common: baseline has {sorted(baseline)}, candidate has {sorted(candidate)}"
        )
    metrics, slices = {}, {}
    for s in common:
        m, sl = compare_suite(baseline[s], candidate[s])
        metrics.update(m)
        slices.update(sl)
    return Comparison(common, metrics, slices, _identity(baseline), _identity(candidate),
                      missing=[s for s in baseline if s not in candidate])

"""Gate decisions: every rule with its verdict, numbers and a one-line reason.

Verdicts: `pass`, `fail`, `insufficient_evidence` (the interval straddles the margin: the data
cannot tell), `skipped` (a suite that is not required and was not evaluated, or slices under
`min_n`). A rule blocks the gate when it fails, or when its evidence is insufficient and the
policy says insufficient evidence fails.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from harness.errors import ConfigError
from harness.evals.results import metric_kind
from harness.gates.compare import Comparison, MetricComparison
from harness.gates.paired import holm, noninferiority_verdicts, superiority_verdicts, tango_interval, tango_pvalue_noninferior, z_of
from harness.gates.policy import Policy, Rule

PASS, FAIL, INSUFFICIENT, SKIPPED = "pass", "fail", "insufficient_evidence", "skipped"


@dataclass
class RuleResult:
    rule: str
    metric: str
    test: str
    verdict: str
    blocking: bool
    reason: str
    threshold: float | None = None
    baseline: float | None = None
    candidate: float | None = None
    delta: float | None = None
    ci: tuple[float, float] | None = None
    n: int | None = None
    p_value: float | None = None
    slice: str | None = None
    note: str = ""
    errors: int = 0  # cases the metric's check raised on, left out of n


@dataclass
class GateDecision:
    policy: str
    passed: bool
    rules: list[RuleResult]
    baseline: dict = field(default_factory=dict)
    candidate: dict = field(default_factory=dict)
    excluded: dict = field(default_factory=dict)  # suite -> cases left out of the comparison (checkpoint selection)
    confidence: float = 0.95  # of every interval (stricter than the policy's at a sequential look)
    sequential: dict = field(default_factory=dict)  # how a sequential evaluation stopped (harness.gates.sequential)

    @property
    def counts(self) -> dict:
        out: dict[str, int] = {}
        for r in self.rules:
            out[r.verdict] = out.get(r.verdict, 0) + 1
        return out

    @property
    def blocking(self) -> list[RuleResult]:
        return [r for r in self.rules if r.blocking]

    @property
    def unproven(self) -> list[RuleResult]:
        """Rules that let the candidate through without evidence: their interval could not
        decide and the policy says `on_insufficient: pass` for them."""
        return [r for r in self.rules if r.verdict == INSUFFICIENT and not r.blocking]

    def to_dict(self) -> dict:
        return {"policy": self.policy, "passed": self.passed, "counts": self.counts, "baseline": self.baseline,
                "candidate": self.candidate, "rules": [asdict(r) for r in self.rules],
                "unproven": [rule_label(r) for r in self.unproven], "excluded": self.excluded,
                "confidence": self.confidence, "sequential": self.sequential}

    def to_markdown(self, max_rows: int = 200) -> str:
        return render_markdown(self, max_rows)

    @classmethod
    def from_dict(cls, d: dict) -> GateDecision:
        """The decision `to_dict` stored (the registry's `gate_decisions.decision`)."""
        rules = [RuleResult(**{**r, "ci": tuple(r["ci"]) if r.get("ci") else None}) for r in d.get("rules", [])]
        return cls(d["policy"], d["passed"], rules, d.get("baseline") or {}, d.get("candidate") or {},
                   d.get("excluded") or {}, d.get("confidence", 0.95), d.get("sequential") or {})


def _fmt(x, pct=False) -> str:
    if x is None:
        return "-"
    return f"{x:+.3f}" if pct else f"{x:.3f}"


def _noninferior(m: MetricComparison, margin: float) -> tuple[str, str]:
    lo, hi = m.ci
    passed, failed = noninferiority_verdicts(lo, hi, m.delta, margin)
    if passed:
        return PASS, f"delta {m.delta:+.3f}, lower bound {lo:+.3f} >= -{margin}"
    if failed:
        return FAIL, f"dropped {m.delta:+.3f} (interval {lo:+.3f}..{hi:+.3f}) beyond the margin {margin}"
    return INSUFFICIENT, f"interval {lo:+.3f}..{hi:+.3f} straddles -{margin} with n={m.n}: more cases needed"


def _superior(m: MetricComparison) -> tuple[str, str]:
    lo, hi = m.ci
    passed, failed = superiority_verdicts(lo, m.delta)
    if passed:
        return PASS, f"improved {m.delta:+.3f} (interval {lo:+.3f}..{hi:+.3f} excludes 0)"
    if failed:
        return FAIL, f"no improvement: delta {m.delta:+.3f}"
    return INSUFFICIENT, f"delta {m.delta:+.3f} but interval {lo:+.3f}..{hi:+.3f} includes 0 (n={m.n})"


MIN_TIMED = 3  # fewer timed cases than this give no interval worth the name


def _ratio(m: MetricComparison, limit: float) -> tuple[str, str]:
    r = m.ratio if m.ratio is not None else (m.candidate / m.baseline if m.baseline else float("inf"))
    if m.kind == "latency" and m.n < MIN_TIMED:
        return INSUFFICIENT, (f"ratio {r:.2f} from {m.n} timed case(s): too few to compare latency "
                              f"(at least {MIN_TIMED}; raise latency_sample)")
    lo, hi = m.ratio_ci or (r, r)
    if hi <= limit:
        return PASS, f"ratio {r:.2f} (interval {lo:.2f}..{hi:.2f}) <= {limit}"
    if lo > limit:
        return FAIL, f"ratio {r:.2f} (interval {lo:.2f}..{hi:.2f}) > {limit}"
    return INSUFFICIENT, f"ratio {r:.2f}, interval {lo:.2f}..{hi:.2f} straddles {limit} (n={m.n})"


def _bound(m: MetricComparison, value: float, upper: bool) -> tuple[str, str]:
    ok = m.candidate <= value if upper else m.candidate >= value
    op = "<=" if upper else ">="
    return (PASS if ok else FAIL), f"candidate {m.candidate:.3f} {op if ok else ('>' if upper else '<')} {value}"


def _result(rule: Rule, test: str, m: MetricComparison, verdict: str, reason: str, policy: Policy, threshold) -> RuleResult:
    insufficient_fails = (rule.on_insufficient or policy.on_insufficient) == "fail"
    blocking = verdict == FAIL or (verdict == INSUFFICIENT and insufficient_fails)
    errors = m.errors
    if errors:
        reason += f"; {errors} case(s) not counted: the check raised on them (a check error, not a model failure)"
    return RuleResult(
        rule=rule.label(), metric=m.metric, test=test, verdict=verdict, blocking=blocking, reason=reason, threshold=threshold,
        baseline=m.baseline, candidate=m.candidate, delta=m.delta, ci=m.ci, n=m.n, p_value=m.p_value, slice=m.slice, note=rule.note,
        errors=errors,
    )


def _apply(rule: Rule, m: MetricComparison, policy: Policy) -> list[RuleResult]:
    if not m.n and m.errors:
        test = "min" if rule.min is not None else "max" if rule.max is not None else "max_drop" if rule.max_drop is not None else "-"
        return [_result(rule, test, m, INSUFFICIENT, f"no case could be scored: the check raised on all {m.errors}",
                        policy, None)]
    out = []
    # a wildcard (`general/*`) means the suite's quality rates: a drop of 0.02 in a token count or
    # a latency is not a regression, so max_drop/must_improve reach those only when named exactly
    quality = m.kind == "rate" or "*" not in rule.metric
    if rule.min is not None:
        out.append(_result(rule, "min", m, *_bound(m, rule.min, upper=False), policy, rule.min))
    if rule.max is not None:
        out.append(_result(rule, "max", m, *_bound(m, rule.max, upper=True), policy, rule.max))
    if rule.max_drop is not None and m.kind != "latency" and quality:
        out.append(_result(rule, "max_drop", m, *_noninferior(m, rule.max_drop), policy, rule.max_drop))
    if rule.must_improve and m.kind != "latency" and quality:
        out.append(_result(rule, "must_improve", m, *_superior(m), policy, 0.0))
    if rule.max_ratio is not None and m.kind in ("latency", "mean"):
        out.append(_result(rule, "max_ratio", m, *_ratio(m, rule.max_ratio), policy, rule.max_ratio))
    return out


def _apply_slices(rule: Rule, metric: str, comparison: Comparison, policy: Policy) -> list[RuleResult]:
    """Per-slice tests; non-inferiority passes are Holm-corrected across the slices tested."""
    per = comparison.slices.get(metric, {})
    tested, out = [], []
    for key, m in per.items():
        if key.split("=", 1)[0] not in rule.slices:
            continue
        if m.n < rule.min_n:
            out.append(RuleResult(rule=rule.label(), metric=metric, test="slice", verdict=SKIPPED, blocking=False,
                                  reason=f"n={m.n} < min_n {rule.min_n}", n=m.n, slice=key, note=rule.note))
            continue
        tested.append(m)
    if rule.max_drop is not None and tested and all(m.counts for m in tested):
        alpha = (1 - policy.confidence) / 2
        pvals = [tango_pvalue_noninferior(m.counts["b"], m.counts["c"], m.counts["n"], rule.max_drop) for m in tested]
        rejected = holm(pvals, alpha)
        for m, p, rej in zip(tested, pvals, rejected):
            verdict, reason = _noninferior(m, rule.max_drop)
            if verdict == PASS and not rej:
                verdict, reason = INSUFFICIENT, f"non-inferior alone (p={p:.3f}) but not after Holm correction across {len(tested)} slices"
            elif verdict == PASS:
                reason += f"; Holm-adjusted across {len(tested)} slices (p={p:.4f})"
            r = _result(rule, "max_drop", m, verdict, reason, policy, rule.max_drop)
            r.p_value = p
            out.append(r)
        rest = rule.model_copy(update={"max_drop": None})
    else:
        rest = rule
    for m in tested:
        out += _apply(rest, m, policy)
    return out


def at_confidence(comparison: Comparison, confidence: float) -> Comparison:
    """The comparison with every pass/fail interval recomputed at this two-sided confidence
    (from the paired counts; the comparison itself is computed at 0.95)."""
    import copy

    if abs(confidence - 0.95) < 1e-12:
        return comparison
    z = z_of(confidence)

    def redo(m: MetricComparison) -> MetricComparison:
        if m.kind != "rate" or not m.counts:
            return m
        lo, hi = tango_interval(m.counts["b"], m.counts["c"], m.counts["n"], z)
        return replace(m, ci=(float(lo), float(hi)))

    out = copy.copy(comparison)
    out.metrics = {k: redo(m) for k, m in comparison.metrics.items()}
    out.slices = {k: {s: redo(m) for s, m in d.items()} for k, d in comparison.slices.items()}
    return out


def decide(comparison: Comparison, policy: Policy, arms: dict[str, Comparison] | None = None,
           confidence: float | None = None) -> GateDecision:
    """Apply every rule of the policy to a comparison; unknown metrics are a config error.

    Intervals are taken at the policy's confidence, or at `confidence` when given (a sequential
    evaluation's look, whose boundary is stricter than the policy's)."""
    if confidence is not None and confidence != policy.confidence:
        policy = policy.model_copy(update={"confidence": confidence})
    comparison = at_confidence(comparison, policy.confidence)
    arms = {k: at_confidence(v, policy.confidence) for k, v in (arms or {}).items()}
    rules_out: list[RuleResult] = []
    present = set(comparison.suites)
    for suite in policy.required:
        if suite not in present:
            rules_out.append(RuleResult(rule=f"required {suite}", metric=suite, test="required", verdict=FAIL, blocking=True,
                                        reason=f"no results for required suite {suite!r} in both baseline and candidate"))
    problems = []
    for i, rule in enumerate(policy.rules):
        suite_pat = rule.metric.split("/", 1)[0]
        import fnmatch

        suites = [s for s in present if fnmatch.fnmatchcase(s, suite_pat)]
        if not suites:
            if not any(fnmatch.fnmatchcase(s, suite_pat) for s in policy.required):
                rules_out.append(RuleResult(rule=rule.label(), metric=rule.metric, test="-", verdict=SKIPPED, blocking=False,
                                            reason="suite not evaluated", note=rule.note))
            continue
        if rule.beats_arm:
            rules_out += _beats_arm(rule, arms or {}, policy)
            continue
        pat = rule.pattern()
        matched = [k for k in comparison.metrics if pat.match(k)]
        if not matched and metric_kind(rule.metric) == "latency":
            # latency is timed only when asked for (latency_sample > 0): not measured is not a typo
            rules_out.append(RuleResult(rule=rule.label(), metric=rule.metric, test="-", verdict=SKIPPED, blocking=False,
                                        reason="latency not measured (latency_sample: 0)", note=rule.note))
            continue
        if not matched:
            known = sorted(k for k in comparison.metrics if k.split("/")[0] in suites)
            problems.append(f"rule {i + 1} ({rule.label()}): metric {rule.metric!r} matches nothing; known metrics: {', '.join(known)}")
            continue
        for metric in matched:
            if rule.slices:
                rules_out += _apply_slices(rule, metric, comparison, policy)
            else:
                rules_out += _apply(rule, comparison.metrics[metric], policy)
    if problems:
        raise ConfigError(problems, title=f"gate policy {policy.name!r} does not fit these results")
    return GateDecision(policy.name, not any(r.blocking for r in rules_out), rules_out, comparison.baseline, comparison.candidate,
                        confidence=policy.confidence)


def _beats_arm(rule: Rule, arms: dict[str, Comparison], policy: Policy) -> list[RuleResult]:
    """The candidate against another arm (e.g. few-shot prompting of the base)."""
    arm = rule.beats_arm
    if arm not in arms:
        return [RuleResult(rule=rule.label(), metric=rule.metric, test="beats_arm", verdict=FAIL, blocking=True,
                           reason=f"arm {arm!r} was not evaluated: add it to the run's arms")]
    cmp = arms[arm]
    pat = rule.pattern()
    out = []
    margin = rule.max_drop or 0.0
    for metric in [k for k in cmp.metrics if pat.match(k)]:
        m = cmp.metrics[metric]
        verdict, reason = (_superior(m) if rule.must_improve else _noninferior(m, margin))
        if verdict != PASS:
            reason = f"fine-tuning not justified over {arm}: {reason}"
        r = _result(rule, "beats_arm", m, verdict, reason, policy, margin)
        out.append(r)
    if not out:
        raise ConfigError(f"rule {rule.label()}: metric {rule.metric!r} matches nothing in arm {arm!r}")
    return out


ICON = {PASS: "✅", FAIL: "❌", INSUFFICIENT: "⚠️", SKIPPED: "⏭️"}
# Suites whose rules passing without evidence are a warning in red, not yellow.
GUARDED_SUITES = ("safety",)


def ci_label(confidence: float) -> str:
    """`95%`, or `99.4%` for a sequential look's stricter interval."""
    return f"{100 * confidence:.3g}%"


def rule_label(r: RuleResult) -> str:
    """`metric [slice] test`."""
    return f"{r.metric}{f' [{r.slice}]' if r.slice else ''} {r.test}"


def unproven_warning(d: GateDecision) -> tuple[str, bool] | None:
    """(the warning line, whether it concerns a safety rule) when rules passed without evidence."""
    rules = d.unproven
    if not rules:
        return None
    guarded = any(r.metric.split("/", 1)[0] in GUARDED_SUITES for r in rules)
    names = ", ".join(rule_label(r) for r in rules[:6]) + (f" and {len(rules) - 6} more" if len(rules) > 6 else "")
    return (f"{len(rules)} rule(s) passed WITHOUT EVIDENCE (on_insufficient: pass): {names}. Their intervals could not "
            "decide; the candidate was not shown to meet them. Evaluate more cases, or choose margins the suites' "
            "n can resolve.", guarded)


def render_markdown(d: GateDecision, max_rows: int = 200) -> str:
    head = "✅ **Gate passed**" if d.passed else "❌ **Gate failed**"
    counts = ", ".join(f"{v} {k}" for k, v in sorted(d.counts.items()))
    cand = d.candidate or {}
    lines = [
        f"## {head} — policy `{d.policy}`",
        "",
        f"Candidate: `{cand.get('model', '?')}` adapter `{(cand.get('adapter_hash') or 'none')[:12]}`; rules: {counts}.",
        "",
    ]
    if d.blocking:
        lines += ["**Blocking:**", ""] + [f"- `{r.metric}`{f' [{r.slice}]' if r.slice else ''} {r.test}: {r.reason}" for r in d.blocking] + [""]
    warning = unproven_warning(d)
    if warning:
        lines += [f"> ⚠️ **{'Safety rules' if warning[1] else 'Rules'} passed without evidence.** {warning[0]}", ""]
    seq = d.sequential
    if seq:
        lines += [f"Sequential evaluation: {seq['why']}", ""]
    lines += [f"| | rule | metric | slice | baseline | candidate | Δ [{ci_label(d.confidence)} CI] | n | reason |", "|---|---|---|---|---|---|---|---|---|"]
    shown = sorted(d.rules, key=lambda r: (not r.blocking, r.verdict == SKIPPED))[:max_rows]
    for r in shown:
        ci = f"{_fmt(r.delta, True)} [{r.ci[0]:+.3f}, {r.ci[1]:+.3f}]" if r.ci else _fmt(r.delta, True)
        reason = r.reason.replace("|", "\\|")
        lines.append(f"| {ICON.get(r.verdict, '')} {r.verdict} | {r.test} | `{r.metric}` | {r.slice or ''} | {_fmt(r.baseline)} | "
                     f"{_fmt(r.candidate)} | {ci} | {r.n or ''} | {reason} |")
    if len(d.rules) > max_rows:
        lines.append(f"\n… {len(d.rules) - max_rows} more rules in the JSON decision.")
    return "\n".join(lines) + "\n"

"""Power planning: which rules of a policy the suites can decide, before anything is evaluated.

For every rule (and every slice value it tests) the plan states the cases the metric has, the
baseline's rate (from baseline results when given, else the policy's `plan.base_rate`), and the
chance that the gate *decides* it at that n under stated scenarios, computed exactly from the
paired counts' trinomial distribution through the same interval and verdict functions the gate
uses:

- `max_drop m`: a candidate as good as the baseline, flipping `flip_rate` of the cases (half each
  way), must pass; one worse by 2m (or by all the baseline has, if less) must fail;
- `must_improve` / `beats_arm`: a candidate better by `plan.improvement` must pass;
- slices: the same per slice value, at the Holm step's strictest level (alpha / slices tested).

A rule is decidable when each of its scenarios has at least `plan.power` (0.8); `needs` is the
smallest n where it would be. Floors and ceilings (`min`/`max`) are judged on the estimate and
cost rules (`max_ratio`) on the timed cases: they are listed, not planned.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.special import gammaln, xlogy

from harness.evals.results import metric_kind
from harness.gates.paired import noninferiority_verdicts, superiority_verdicts, tango_interval, z_of
from harness.gates.policy import Policy, Rule

N_MAX = 200_000  # beyond this a rule is called undecidable ("never")


# ---- the statistics ------------------------------------------------------------------------
def scenario(rate: float, flip_rate: float, delta: float) -> tuple[float, float, float]:
    """(p_b, p_c, the delta reached): the chances that a case goes fail->pass and pass->fail for a
    candidate `delta` away from a baseline passing `rate` of the cases. An equal candidate flips
    flip_rate/2 each way (no more than the rate allows); a change adds flips on one side and, where
    the baseline has too little to lose (or to gain), takes them from the other, down to losing
    (gaining) everything it can."""
    q = min(flip_rate / 2, rate, 1 - rate)
    if delta >= 0:
        pb = min(q + delta, 1 - rate)
        pc = max(0.0, min(q, pb - delta))
    else:
        pc = min(q - delta, rate)
        pb = max(0.0, min(q, pc + delta))
    return pb, pc, pb - pc


def _outcomes(n: int, pb: float, pc: float, width: float = 8.0, max_points: int = 300_000, draws: int = 40_000):
    """(b, c, weight) covering the trinomial's mass: every pair within `width` sd when that is
    few enough, else a fixed-seed sample."""
    def span(p):
        sd = math.sqrt(n * p * (1 - p))
        return max(0, math.floor(n * p - width * sd - 2)), min(n, math.ceil(n * p + width * sd + 2))

    (b0, b1), (c0, c1) = span(pb), span(pc)
    if (b1 - b0 + 1) * (c1 - c0 + 1) <= max_points:
        b, c = np.meshgrid(np.arange(b0, b1 + 1), np.arange(c0, c1 + 1), indexing="ij")
        b, c = b.ravel().astype(float), c.ravel().astype(float)
        ok = b + c <= n
        b, c = b[ok], c[ok]
        rest = n - b - c
        logw = (gammaln(n + 1) - gammaln(b + 1) - gammaln(c + 1) - gammaln(rest + 1)
                + xlogy(b, pb) + xlogy(c, pc) + xlogy(rest, max(0.0, 1 - pb - pc)))
        w = np.exp(logw)
        keep = w > 1e-15
        return b[keep], c[keep], w[keep] / w[keep].sum()
    draw = np.random.default_rng(0).multinomial(n, [pb, pc, max(0.0, 1 - pb - pc)], size=draws)
    return draw[:, 0].astype(float), draw[:, 1].astype(float), np.full(draws, 1.0 / draws)


def verdict_chances(n: int, pb: float, pc: float, test: str, margin: float, z: float) -> tuple[float, float]:
    """(P(pass), P(fail)) of a rule's test at n paired cases, exactly as the gate decides it."""
    if n <= 0:
        return 0.0, 0.0
    b, c, w = _outcomes(n, pb, pc)
    lo, hi = tango_interval(b, c, np.full(b.shape, float(n)), z)
    est = (b - c) / n
    if test == "must_improve":
        passed, failed = superiority_verdicts(lo, est)
    else:
        passed, failed = noninferiority_verdicts(lo, hi, est, margin)
    return float(w[passed].sum()), float(w[failed].sum())


def smallest_n(chance, target: float, n_max: int = N_MAX) -> int | None:
    """The smallest n with chance(n) >= target (doubling, then bisection); None past n_max."""
    if chance(1) >= target:
        return 1
    hi = 8
    while chance(hi) < target:
        if hi >= n_max:
            return None
        hi = min(hi * 2, n_max)
    lo = hi // 2 if hi > 8 else 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if chance(mid) >= target:
            hi = mid
        else:
            lo = mid
    return hi


@dataclass
class Scenario:
    what: str  # "an equal candidate passes", ...
    delta: float
    pb: float
    pc: float
    want: str  # pass | fail
    chance: float = 0.0  # at the n the suite has
    needs: int | None = None  # smallest n at which chance >= power


def _scenarios(test: str, margin: float, rate: float, flips: float, improvement: float) -> list[Scenario]:
    out = []
    if test in ("max_drop", "slice"):
        pb, pc, d = scenario(rate, flips, 0.0)
        out.append(Scenario("an equal candidate passes", d, pb, pc, "pass"))
        pb, pc, d = scenario(rate, flips, -2 * margin)
        if -d > margin + 1e-9:  # else no drop beyond the margin is possible: nothing to catch
            capped = "" if abs(d + 2 * margin) < 1e-9 else f" (all the baseline has: {-d:.3f})"
            out.append(Scenario(f"a drop of {-d:.3f}{capped} fails", d, pb, pc, "fail"))
    else:  # must_improve, beats_arm
        pb, pc, d = scenario(rate, flips, improvement)
        out.append(Scenario(f"a gain of {d:+.3f} passes", d, pb, pc, "pass"))
    return out


def _chance(test: str, margin: float, z: float, s: Scenario):
    kind = "must_improve" if test == "must_improve" else "max_drop"
    pick = 0 if s.want == "pass" else 1
    return lambda n: verdict_chances(n, s.pb, s.pc, kind, margin, z)[pick]


# ---- the plan ------------------------------------------------------------------------------
@dataclass
class PlannedRule:
    rule: str
    metric: str
    test: str
    slice: str | None
    n: int
    baseline: float | None
    source: str  # "baseline" | "assumed"
    blocking: bool  # would block the gate while undecided
    decidable: bool | None  # None: not a paired test (floors, ceilings, cost rules)
    needs: int | None = None
    scenarios: list[Scenario] = field(default_factory=list)
    note: str = ""
    cannot_fail: bool = False  # a non-inferiority margin wider than all the baseline has to lose

    @property
    def label(self) -> str:
        return f"{self.metric}{f' [{self.slice}]' if self.slice else ''} {self.test}"

    @property
    def needs_text(self) -> str:
        if self.decidable is None:
            return "-"
        return str(self.needs) if self.needs else f"> {N_MAX}"

    @property
    def summary(self) -> str:
        """Each scenario's chance at the suite's n (and why a rule cannot fail), or the note."""
        return "; ".join([f"{s.what} {s.chance:.0%}" for s in self.scenarios] + ([self.note] if self.cannot_fail else [])) \
            or self.note


@dataclass
class GatePlan:
    policy: str
    power: float
    flip_rate: float
    improvement: float
    confidence: float
    z: float
    rules: list[PlannedRule]
    baseline: str | None = None  # where the rates came from
    sequential: int | None = None  # looks, when planned for a sequential evaluation

    @property
    def vacuous(self) -> list[PlannedRule]:
        """Rules that cannot fail: the baseline has less to lose than their margin."""
        return [r for r in self.rules if r.cannot_fail]

    @property
    def undecidable(self) -> list[PlannedRule]:
        """Blocking rules the suites cannot decide: the run would fail on insufficient evidence."""
        return [r for r in self.rules if r.blocking and r.decidable is False]

    def to_dict(self) -> dict:
        return {**{k: v for k, v in asdict(self).items() if k != "rules"},
                "rules": [{**asdict(r), "needs_text": r.needs_text, "summary": r.summary} for r in self.rules], "undecidable": [r.label for r in self.undecidable],
                "cannot_fail": [r.label for r in self.vacuous]}

    def warning(self) -> str | None:
        bad = self.undecidable
        if not bad:
            return None
        names = "; ".join(f"{r.label} (n {r.n}, needs {r.needs_text})" for r in bad[:6])
        more = f" and {len(bad) - 6} more" if len(bad) > 6 else ""
        return (f"{len(bad)} blocking rule(s) cannot be decided with these cases: {names}{more}. With "
                f"{self.flip_rate:.0%} of cases flipping they end 'insufficient evidence' (and fail) more than "
                f"{1 - self.power:.0%} of the time: grow the suite, or choose a margin its n can resolve.")

    def caution(self) -> str | None:
        """Rules whose margin is wider than all the baseline has to lose."""
        v = self.vacuous
        if not v:
            return None
        names = "; ".join(f"{r.label} (baseline {r.baseline:.3f})" for r in v[:6]) + (f" and {len(v) - 6} more" if len(v) > 6 else "")
        return (f"{len(v)} rule(s) cannot fail: the baseline passes fewer cases than the margin, so no regression beyond "
                f"it is possible: {names}. They guard nothing at this baseline; a smaller margin needs more cases.")

    def to_markdown(self) -> str:
        lines = [f"Gate plan for policy `{self.policy}`: {self.power:.0%} power, {self.flip_rate:.0%} of cases flipping, "
                 f"gains of {self.improvement:+.2f}, intervals at z={self.z:.2f}"
                 + (f" (the last of {self.sequential} sequential looks)" if self.sequential else "")
                 + f"; baseline rates from {self.baseline or 'an assumption (plan.base_rate)'}.", ""]
        w = self.warning()
        if w:
            lines += [f"> ⚠️ **{w}**", ""]
        c = self.caution()
        if c:
            lines += [f"> ⚠️ {c}", ""]
        lines += ["| | rule | metric | slice | n | baseline | needs n | chance at n |", "|---|---|---|---|---|---|---|---|"]
        for r in self.rules:
            icon = {True: "✅", False: "❌" if r.blocking else "⚠️", None: "·"}[r.decidable]
            base = "-" if r.baseline is None else f"{r.baseline:.3f}" + ("" if r.source == "baseline" else " (assumed)")
            lines.append(f"| {icon} | {r.test} | `{r.metric}` | {r.slice or ''} | {r.n} | {base} | "
                         f"{r.needs_text} | {r.summary.replace('|', '/')} |")
        return "\n".join(lines) + "\n"


def suite_metrics(suite, baseline=None) -> dict[str, list[str]]:
    """metric name -> the ids of the cases it is computed on, as an evaluation of `suite` would
    produce it (field metrics such as `field_match.priority` only when baseline results show them)."""
    out: dict[str, list[str]] = {}
    scored: set[str] = set()
    for bc in suite.checks:
        ids = [c.id for c in suite.cases if bc.applies(c)]
        out[f"{suite.name}/{bc.spec.metric}"] = ids
        scored.update(ids)
    out[f"{suite.name}/pass_rate"] = [c.id for c in suite.cases if c.id in scored]
    gen = [c.id for c in suite.cases if suite.needs_generation(c)]
    if gen:
        out[f"{suite.name}/completion_tokens"] = gen
    if baseline is not None:
        keep = {c.id for c in suite.cases}
        for name, values in baseline.case_values().items():
            if name not in out and metric_kind(name) == "rate":
                out[name] = [i for i in values if i in keep]
    return out


def plan(policy: Policy, suites, baseline: dict | None = None, *, baseline_from: str | None = None,
         flip_rate: float | None = None, power: float | None = None, improvement: float | None = None,
         looks: int | None = None) -> GatePlan:
    """Plan every rule of `policy` over the suites (Suite objects, already sampled to the cases a
    run evaluates); `baseline`: suite name -> SuiteResult of the base model, for its rates."""
    ps = policy.plan
    power = ps.power if power is None else power
    flips = ps.flip_rate if flip_rate is None else flip_rate
    gain = ps.improvement if improvement is None else improvement
    z = z_of(policy.confidence)
    if looks and looks > 1:
        from harness.gates.sequential import plan_looks

        z = plan_looks(looks, policy.confidence)[-1].z
    baseline = baseline or {}
    inventory: dict[str, list[str]] = {}
    values: dict[str, dict[str, float]] = {}
    slices_of: dict[str, dict] = {}
    for s in suites:
        b = baseline.get(s.name)
        inventory.update(suite_metrics(s, b))
        if b is not None:
            values.update(b.case_values())
        slices_of.update({c.id: c.slices for c in s.cases})
    names = [s.name for s in suites]
    rows: list[PlannedRule] = []
    for rule in policy.rules:
        suite_pat = rule.metric.split("/", 1)[0]
        if not any(fnmatch.fnmatchcase(n, suite_pat) for n in names):
            continue
        pat = rule.pattern()
        matched = [m for m in inventory if pat.match(m)]
        blocking = (rule.on_insufficient or policy.on_insufficient) == "fail"
        if not matched and metric_kind(rule.metric) == "latency":
            rows.append(PlannedRule(rule.label(), rule.metric, "max_ratio" if rule.max_ratio else "-", None, 0, None,
                                    "assumed", False, None, note="a cost rule, judged on the latency sample"))
            continue
        if not matched:
            rows.append(PlannedRule(rule.label(), rule.metric, "-", None, 0, None, "assumed", False, None,
                                    note="matches no metric these suites compute before evaluation (field metrics show "
                                         "once a baseline is given)"))
            continue
        for metric in matched:
            rows += _plan_metric(rule, metric, inventory[metric], values.get(metric), slices_of, policy, blocking,
                                 flips if rule.flip_rate is None else rule.flip_rate, gain, power, z)
    return GatePlan(policy.name, power, flips, gain, policy.confidence, z, rows, baseline_from, looks if looks and looks > 1 else None)


def _rate(ids, vals, assumed) -> tuple[float, str]:
    if vals:
        got = [vals[i] for i in ids if i in vals]
        if got:
            return float(np.mean(got)), "baseline"
    return assumed, "assumed"


def _plan_metric(rule: Rule, metric: str, ids, vals, slices_of, policy: Policy, blocking, flips, gain, power, z) -> list[PlannedRule]:
    kind = metric_kind(metric)
    quality = kind == "rate" or "*" not in rule.metric
    rate, source = _rate(ids, vals, policy.plan.base_rate)
    out = []

    def row(test, decidable, note, slice_=None, n=len(ids), r=rate, src=source, block=blocking):
        return PlannedRule(rule.label(), metric, test, slice_, n, r if kind == "rate" else None, src, block, decidable, note=note)

    for t in ("min", "max"):
        if getattr(rule, t) is not None:
            out.append(row(t, None, "a bound on the estimate: decided at any n"))
    if rule.max_ratio is not None and kind in ("latency", "mean"):
        out.append(row("max_ratio", None, "a cost rule, judged on the timed or generated cases"))
    tests = []
    if rule.max_drop is not None and kind == "rate" and quality and not rule.beats_arm:
        tests.append(("max_drop", rule.max_drop))
    if rule.must_improve and kind == "rate" and quality and not rule.beats_arm:
        tests.append(("must_improve", 0.0))
    if rule.beats_arm and kind == "rate":
        tests.append(("must_improve" if rule.must_improve else "beats_arm", rule.max_drop or 0.0))
    for test, margin in tests:
        if rule.slices and test == "max_drop":
            out += _plan_slices(rule, metric, ids, vals, slices_of, policy, blocking, flips, gain, power, z, margin)
            continue
        r = row(test, None, "")
        _decide(r, test, margin, rate, flips, gain, power, z)
        if rule.beats_arm:
            r.note = f"against arm {rule.beats_arm!r}, planned at the baseline's rate"
        out.append(r)
    return out


def _plan_slices(rule, metric, ids, vals, slices_of, policy, blocking, flips, gain, power, z, margin) -> list[PlannedRule]:
    groups: dict[str, list[str]] = {}
    for i in ids:
        for f in rule.slices:
            if f in (slices_of.get(i) or {}):
                groups.setdefault(f"{f}={slices_of[i][f]}", []).append(i)
    tested = {k: g for k, g in sorted(groups.items()) if len(g) >= rule.min_n}
    k = max(1, len(tested))
    alpha = (1 - policy.confidence) / 2
    from scipy import stats

    z_holm = max(z, float(stats.norm.isf(alpha / k)))  # the Holm step's strictest level
    out = []
    for key, g in sorted(groups.items()):
        rate, source = _rate(g, vals, policy.plan.base_rate)
        if key not in tested:
            out.append(PlannedRule(rule.label(), metric, "slice", key, len(g), rate, source, False, None,
                                   note=f"skipped by the gate: n {len(g)} < min_n {rule.min_n}"))
            continue
        r = PlannedRule(rule.label(), metric, "max_drop", key, len(g), rate, source, blocking, None,
                        note=f"at the Holm step's strictest level (alpha/{k}, z={z_holm:.2f})")
        _decide(r, "slice", margin, rate, flips, gain, power, z_holm)
        out.append(r)
    return out


def _decide(r: PlannedRule, test: str, margin: float, rate: float, flips: float, gain: float, power: float, z: float) -> None:
    r.scenarios = _scenarios(test, margin, rate, flips, gain)
    needs = []
    for s in r.scenarios:
        fn = _chance(test, margin, z, s)
        s.chance = fn(r.n)
        s.needs = smallest_n(fn, power)
        needs.append(s.needs)
    r.decidable = all(s.chance >= power for s in r.scenarios)
    r.needs = None if any(x is None for x in needs) else max(needs)
    if test in ("max_drop", "slice") and len(r.scenarios) == 1:
        r.cannot_fail = True
        r.note = (f"the baseline passes only {rate:.3f} of these cases: no drop beyond the margin {margin} is possible, "
                  "so this rule cannot fail (it guards nothing here)")

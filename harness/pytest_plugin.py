"""pytest plugin (`pytest11` entry point `harness`): eval suites and gate rules as test items.

Inactive unless `--harness-model SPEC` is given: without it the plugin only adds its options,
collects nothing and prints nothing, so other projects' test runs are unchanged.

With it, every `suite.yaml` under the paths given to pytest becomes a collector named by the
suite, and each case an item (`suites/ticket_triage/suite.yaml::ticket_triage::case-042`) whose
assertions are the suite's checks. Slice values become markers (`difficulty_hard`). Once
collection and selection (`-k`, `-m`, `--lf`) are done, and before the first test runs, the
selected cases are generated in one batched pass per suite through the completion cache, with
one model load for the session; the items then only assert on the scored results.

`min_pass_rate` (suite.yaml): a suite that declares it gets one more item,
`<suite>::min_pass_rate`, which fails when the pass rate over the selected cases is below the
threshold. When the rate meets the threshold, the suite's failing cases are reported as
`xfail` (JUnit `<skipped type="pytest.xfail">`) with their failed checks as the reason; when it
does not, they fail like any test. Suites without `min_pass_rate` tolerate no failure. The exit
status follows from the items alone. `--runxfail` shows tolerated cases as failures.

`--harness-baseline` compares the session's results with a baseline (a results folder, or a
registry run's baseline) under a gate policy and adds one item per rule result,
`gate::<rule metric>::<test>[<metric>,<slice>]`, failing when the rule blocks the gate.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

# harness modules are imported inside functions: this module is imported by every pytest run
# on a machine where the harness is installed, and must cost nothing there.


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("harness", "harness: eval suites and gate rules as tests (off unless --harness-model)")
    g.addoption("--harness-model", metavar="SPEC", default=None,
                help="model spec to evaluate (embedded name, local folder or hub id); turns the plugin on: "
                     "folders holding suite.yaml are collected, one test per case")
    g.addoption("--harness-adapter", metavar="PATH", default=None, help="PEFT adapter folder attached to the model")
    g.addoption("--harness-baseline", metavar="RESULTS_OR_RUN", default=None,
                help="results folder of `harness eval`, or a registry run id (its baseline): adds gate rules as tests")
    g.addoption("--harness-policy", metavar="POLICY", default=None,
                help="gate policy YAML for --harness-baseline (default: the shipped policy)")
    g.addoption("--harness-out", metavar="DIR", default=None,
                help="where to write this session's results (default: a new folder under $HARNESS_HOME/results)")
    g.addoption("--harness-dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                help="dtype the model runs in (auto: bfloat16 on CPUs with AMX/AVX512-BF16 and bf16 GPUs, else float32); "
                     "a --harness-baseline must have been computed in the same one")
    g.addoption("--harness-device", default="auto", metavar="DEVICE", help="auto (CUDA, then MPS, else CPU), cpu, cuda[:N] or mps")


class HarnessState:
    """Everything one pytest session knows: options, suites collected, results, the gate decision."""

    def __init__(self, config: pytest.Config):
        o = config.option
        self.config = config
        self.model: str = o.harness_model
        self.dtype, self.device = o.harness_dtype, o.harness_device
        self.adapter: str | None = o.harness_adapter
        self.out: str | None = o.harness_out
        self.policy = self.baseline = self.decision = None
        self.baseline_label, self.policy_path, self.rule_lines = "", None, []
        if o.harness_baseline:
            from harness.gates import load_policy

            self.policy = load_policy(o.harness_policy)  # every policy error before any model work
            self.policy_path, self.rule_lines = rule_lines(o.harness_policy)
            self.baseline, self.baseline_label = load_baseline(o.harness_baseline)
        self.suites: dict[str, object] = {}
        self.results: dict[str, object] = {}
        self.rows: dict[tuple[str, str], list[dict]] = {}
        self.outputs: dict[tuple[str, str], dict] = {}
        self.rates: dict[str, tuple[float, int, list[str]]] = {}  # suite -> (pass rate, n, failed case ids)
        self.out_dir: Path | None = None
        self.markers: set[str] = set()

    def add_suite(self, suite) -> None:
        seen = self.suites.get(suite.name)
        if seen is not None and seen.path != suite.path:
            from harness.errors import HarnessError

            raise HarnessError(f"{suite.path}: suite name {suite.name!r} is also used by {seen.path}: suite names must be unique")
        self.suites[suite.name] = suite

    def register_marker(self, name: str, help_text: str) -> None:
        # registered as they appear, before add_marker, so --strict-markers accepts them
        if name not in self.markers:
            self.config.addinivalue_line("markers", f"{name}: {help_text}")
            self.markers.add(name)

    def tolerated(self, suite) -> str | None:
        """Why a failing case of this suite does not fail the session, or None."""
        t = suite.spec.min_pass_rate
        if t is None or suite.name not in self.rates:
            return None
        rate, n, failed = self.rates[suite.name]
        if not meets(rate, t):
            return None
        return f"tolerated by min_pass_rate {t:g}: {suite.name} passes {n - len(failed)}/{n} = {rate:.3f}"

    # ---- the one batched evaluation --------------------------------------------------------
    def evaluate(self, wanted: dict[str, tuple[object, set[str]]], say) -> None:
        import tempfile
        import time

        from harness.evals import CompletionCache, evaluate_suite, write_result
        from harness.models import HFBackend
        from harness.paths import harness_home

        n = sum(len(ids) or len(s.cases) for s, ids in wanted.values())
        say(f"harness: evaluating {n} cases of {len(wanted)} suite(s) on {self.model}"
            + (f" + adapter {self.adapter}" if self.adapter else ""))
        backend = HFBackend.from_spec(self.model, dtype=self.dtype, device=self.device)
        if self.adapter:
            backend.load_adapter(self.adapter)
        if self.out:
            self.out_dir = Path(self.out)
        else:
            root = harness_home() / "results"
            root.mkdir(parents=True, exist_ok=True)
            self.out_dir = Path(tempfile.mkdtemp(prefix=time.strftime("pytest-%Y%m%d-%H%M%S-"), dir=root))
        cache = CompletionCache()
        try:
            for name, (suite, ids) in wanted.items():
                # only the selected cases; the suite hash stays that of its files, so the
                # results compare with a full baseline case by case
                partial = bool(ids) and len(ids) < len(suite.cases)
                sub = dataclasses.replace(suite, cases=[c for c in suite.cases if c.id in ids]) if partial else suite
                r = evaluate_suite(backend, sub, model_label=self.model, arm="candidate" if self.adapter else "base", cache=cache,
                                   latency_n=0 if partial else None)
                if partial and self.baseline is not None:
                    time_suite_sample(backend, suite, r)
                write_result(r, self.out_dir)
                self.results[name] = r
                self._index(r)
                t = r.summary.get("timing", {})
                say(f"harness: {name}: {len(sub.cases)} cases, {t.get('generated', 0)} generated, "
                    f"{t.get('from_cache', 0)} from cache, {t.get('eval_s', 0):.1f} s")
        finally:
            cache.close()
        if self.baseline is not None:
            from harness.errors import ConfigError
            from harness.gates import compare, decide

            try:
                self.decision = decide(compare(self.baseline, self.results), self.policy)
            except ConfigError as e:
                if not any(ids and len(ids) < len(s.cases) for s, ids in wanted.values()):
                    raise
                hint = "only the selected cases were compared: select whole suites (no -k/-m) to gate on them"
                raise ConfigError([*e.problems, hint], title=e.title) from None

    def _index(self, r) -> None:
        for row in r.rows:
            self.rows.setdefault((r.suite, row["case_id"]), []).append(row)
        for o in r.outputs:
            self.outputs[(r.suite, o["case_id"])] = o
        # the suite's pass rate as the gate computes it: a case whose check raised is left out
        by_case = r.case_values()[f"{r.suite}/pass_rate"]
        failed = [c for c, ok in by_case.items() if not ok]
        n = len(by_case)
        self.rates[r.suite] = ((n - len(failed)) / n if n else 1.0, n, failed)


STATE = pytest.StashKey[HarnessState]()


def meets(rate: float, threshold: float) -> bool:
    return rate + 1e-12 >= threshold  # 0.9 of 10 cases is 0.9, whatever the float rounding


def time_suite_sample(backend, suite, result) -> None:
    """Latency over the suite's fixed sample, as the baseline timed it, though only part of the
    suite was selected: latency comparisons stay paired. Without a gate a partial run skips it."""
    from harness.evals.results import build_summary
    from harness.evals.runner import measure_latency
    from harness.models import GenerationConfig

    if not suite.spec.latency_sample:
        return
    gen_cases = [c for c in suite.cases if suite.needs_generation(c)]
    cfg = GenerationConfig(max_new_tokens=suite.spec.generation.max_new_tokens)
    latency = measure_latency(backend, suite, gen_cases, cfg, suite.spec.latency_sample, None)
    timing = result.summary.get("timing")
    result.summary = build_summary(result, suite.spec.slices, latency)
    result.summary["timing"] = timing


def rule_lines(policy: str | None) -> tuple[Path, list[int]]:
    """The policy file and the 0-based line of each rule, so a gate item points at its rule."""
    import yaml

    from harness.files import read_text
    from harness.gates import DEFAULT_POLICY

    path = Path(policy).resolve() if policy else DEFAULT_POLICY
    root = yaml.compose(read_text(path))  # only after load_policy accepted the file
    for key, value in root.value if isinstance(root, yaml.MappingNode) else []:
        if key.value == "rules" and isinstance(value, yaml.SequenceNode):
            return path, [n.start_mark.line for n in value.value]
    return path, []


def load_baseline(ref: str):
    """(results by suite, label) from a results folder, or from a registry run's baseline evals."""
    from harness.errors import HarnessError
    from harness.evals import load_results

    if Path(ref).is_dir():
        return load_results(ref), str(ref)
    from harness.registry import NotFound, Registry, default_registry_path

    hint = "give a folder written by `harness eval`, or a run id from `harness runs`"
    try:
        reg = Registry(create=False)
    except NotFound:
        raise HarnessError(f"--harness-baseline {ref!r}: no such results folder, and no registry at "
                           f"{default_registry_path()} to find it as a run id ({hint})") from None
    with reg:
        if reg.get_run(ref) is None:
            raise HarnessError(f"--harness-baseline {ref!r}: neither a results folder nor a run id in {reg.path} ({hint})")
        rows = reg.evals(ref, role="baseline")
    if not rows:
        raise HarnessError(f"--harness-baseline {ref!r}: the run has no baseline results recorded (see `harness show {ref}`)")
    results: dict = {}
    for row in rows:
        results.update(load_results(row["results_path"]))
    return results, f"run {ref} (baseline)"


def pytest_configure(config: pytest.Config) -> None:
    o = config.option
    if not o.harness_model:
        given = [f for f, v in (("--harness-adapter", o.harness_adapter), ("--harness-baseline", o.harness_baseline),
                                ("--harness-policy", o.harness_policy), ("--harness-out", o.harness_out)) if v]
        if given:
            raise pytest.UsageError(f"{', '.join(given)} needs --harness-model SPEC: the model whose outputs the suites test")
        return
    if o.harness_policy and not o.harness_baseline:
        raise pytest.UsageError("--harness-policy needs --harness-baseline: the results the gate compares against")
    from harness.errors import HarnessError

    try:
        config.stash[STATE] = HarnessState(config)
    except HarnessError as e:
        raise pytest.UsageError(f"harness: {e}") from None


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if file_path.name == "suite.yaml" and STATE in parent.config.stash:
        return SuiteFile.from_parent(parent, path=file_path)
    return None


def marker_name(field: str, value) -> str:
    """`difficulty: hard` -> `difficulty_hard`; lowercased, anything but letters/digits becomes `_`."""
    return re.sub(r"\W+", "_", f"{field}_{value}").strip("_").lower()


class SuiteFile(pytest.File):
    """A suite.yaml: validated (every problem at once), then one collector named by the suite."""

    def collect(self):
        from harness.evals import load_suite

        suite = load_suite(self.path.parent)
        self.config.stash[STATE].add_suite(suite)
        yield SuiteNode.from_parent(self, name=suite.name, suite=suite)

    def repr_failure(self, excinfo, style=None):
        from harness.errors import HarnessError

        if isinstance(excinfo.value, HarnessError):
            return str(excinfo.value)  # a user error: the message names file, line, field and fix
        return super().repr_failure(excinfo, style)


class SuiteNode(pytest.Collector):
    def __init__(self, *, suite, **kw):
        super().__init__(**kw)
        self.suite = suite

    def collect(self):
        state = self.config.stash[STATE]
        lines = case_lines(self.suite.path / "cases.jsonl")
        for case in self.suite.cases:
            item = CaseItem.from_parent(self, name=case.id.replace("::", ":"), suite=self.suite, case=case,
                                        lineno=lines.get(case.id, 1))
            for f, v in case.slices.items():
                name = marker_name(f, v)
                state.register_marker(name, f"harness cases whose slice {f} is {v!r}")
                item.add_marker(name)
            yield item
        if self.suite.spec.min_pass_rate is not None:
            yield ThresholdItem.from_parent(self, name="min_pass_rate", suite=self.suite)

    def reportinfo(self):
        return self.suite.path / "suite.yaml", 0, self.suite.name


def case_lines(path: Path) -> dict[str, int]:
    """case id -> its 1-based line in cases.jsonl, so reports point at the case."""
    from harness.files import iter_jsonl

    out = {}
    for n, _, value, _ in iter_jsonl(path):
        if isinstance(value, dict) and isinstance(value.get("id"), str):
            out.setdefault(value["id"], n)
    return out


class CaseFailed(AssertionError):
    """A case failed one or more of its checks."""


class CheckErrored(Exception):
    """A check raised on this case: the check or the case is broken, not the model (reported as
    a pytest error, not a failure)."""


class CaseItem(pytest.Item):
    """One case; its assertions are the suite's checks that apply to it."""

    def __init__(self, *, suite, case, lineno: int, **kw):
        super().__init__(**kw)
        self.suite, self.case, self.lineno = suite, case, lineno

    def setup(self) -> None:
        rows = self.config.stash[STATE].rows.get((self.suite.name, self.case.id), [])
        errored = [r for r in rows if r.get("error")]
        if errored:
            raise CheckErrored("; ".join(f"check {r['metric']} ({r['check']}) raised {r['error']}" for r in errored))

    def runtest(self) -> None:
        state = self.config.stash[STATE]
        rows = state.rows.get((self.suite.name, self.case.id), [])
        failed = [r for r in rows if not r["passed"]]
        self.user_properties += [("suite", self.suite.name), ("slices", json.dumps(self.case.slices)),
                                 ("checks_passed", f"{len(rows) - len(failed)}/{len(rows)}")]
        if not failed:
            return
        why = state.tolerated(self.suite)
        if why and not self.config.option.runxfail:
            pytest.xfail(f"{why}; failed {short_failures(failed)}")
        raise CaseFailed(short_failures(failed))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, CaseFailed):
            return describe_case_failure(self)
        if isinstance(excinfo.value, CheckErrored):
            return f"{excinfo.value} (case {self.case.id}, {self.suite.path / 'cases.jsonl'}:{self.lineno}): fix the check or the case"
        if isinstance(excinfo.value, pytest.xfail.Exception):
            return str(excinfo.value)  # reported as xfail; a traceback would only cost time
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.suite.path / "cases.jsonl", self.lineno - 1, f"{self.suite.name}::{self.case.id}"


def short_failures(rows: list[dict]) -> str:
    return "; ".join(f"{r['metric']}" + (f" ({r['reason']})" if r["reason"] else "") for r in rows)


def _indent(text: str, limit: int = 2000) -> str:
    text = text if len(text) <= limit else text[:limit] + f" … ({len(text) - limit} more characters)"
    return "\n".join("    " + line for line in (text.splitlines() or [""]))


def describe_case_failure(item: CaseItem) -> str:
    """The first line is the summary (JUnit message, short test summary); then prompt, output, checks."""
    state = item.config.stash[STATE]
    rows = state.rows.get((item.suite.name, item.case.id), [])
    failed = [r for r in rows if not r["passed"]]
    out = state.outputs.get((item.suite.name, item.case.id), {})
    lines = [f"{len(failed)} of {len(rows)} checks failed: {short_failures(failed)}",
             f"case {item.case.id} ({item.suite.path / 'cases.jsonl'}:{item.lineno})"
             + (f"  slices: {', '.join(f'{k}={v}' for k, v in item.case.slices.items())}" if item.case.slices else ""),
             "prompt:"]
    for m in item.suite.messages(item.case):
        one_line = "\n" not in m["content"] and len(m["content"]) < 200
        lines += [f"  {m['role']}: {m['content']}"] if one_line else [f"  {m['role']}:", _indent(m["content"])]
    if out.get("output") is not None:
        lines += [f"output ({out.get('completion_tokens')} tokens, finish: {out.get('finish_reason')}):", _indent(out["output"])]
    else:
        lines.append("output: none (scored by log-likelihood of the choices)")
    for metric, lps in (out.get("logliks") or {}).items():
        lines.append(f"  {metric} log-probabilities: {', '.join(f'{lp:.2f}' for lp in lps)}")
    lines.append("checks:")
    for r in rows:
        fields = ", ".join(f"{f} {'ok' if ok else 'wrong'}" for f, ok in (r.get("fields") or {}).items())
        lines.append(f"  {'PASS' if r['passed'] else 'FAIL'} {r['metric']}" + (f": {r['reason']}" if r["reason"] else "")
                     + (f" [{fields}]" if fields else ""))
    t = item.suite.spec.min_pass_rate
    if t is not None and item.suite.name in state.rates:
        rate, n, _ = state.rates[item.suite.name]
        lines.append(f"suite {item.suite.name}: pass rate {rate:.3f} over {n} cases "
                     + (f">= min_pass_rate {t:g} (shown as a failure by --runxfail)" if state.tolerated(item.suite)
                        else f"< min_pass_rate {t:g}, so its failing cases fail"))
    return "\n".join(lines)


class ThresholdFailed(AssertionError):
    """A suite's pass rate is below its min_pass_rate."""


class ThresholdItem(pytest.Item):
    """`<suite>::min_pass_rate`: the suite's verdict over the selected cases."""

    def __init__(self, *, suite, **kw):
        super().__init__(**kw)
        self.suite = suite

    def runtest(self) -> None:
        state = self.config.stash[STATE]
        rate, n, failed = state.rates.get(self.suite.name, (1.0, 0, []))
        t = self.suite.spec.min_pass_rate
        self.user_properties += [("pass_rate", f"{rate:.4f}"), ("n", n), ("min_pass_rate", t)]
        if not meets(rate, t):
            shown = ", ".join(failed[:20]) + (f", … {len(failed) - 20} more" if len(failed) > 20 else "")
            raise ThresholdFailed(f"{self.suite.name}: pass rate {rate:.3f} ({n - len(failed)}/{n}) < min_pass_rate {t:g}; "
                                  f"failed cases: {shown}")

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ThresholdFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.suite.path / "suite.yaml", 0, f"{self.suite.name}::min_pass_rate"


# ---- gates --------------------------------------------------------------------------------
class GateRoot(pytest.Collector):
    """`gate`: one item per rule result of the decision (made before the first test runs)."""

    def collect(self):
        from harness.gates import SKIPPED
        from harness.gates.policy import TESTS

        state = self.config.stash[STATE]
        rules = {r.label(): (i, r) for i, r in enumerate(state.policy.rules)}
        seen: dict[str, int] = {}
        for rr in state.decision.rules:
            i, rule = rules.get(rr.rule, (None, None))
            name = gate_item_name(rr, rule, TESTS)
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                name += f"#{seen[name]}"
            line = state.rule_lines[i] if i is not None and i < len(state.rule_lines) else 0
            item = GateItem.from_parent(self, name=name, result=rr, path=state.policy_path, lineno=line)
            if rr.verdict == SKIPPED:  # a mark, so the report points at the item, not at this plugin
                item.add_marker(pytest.mark.skip(reason=rr.reason))
            yield item

    def reportinfo(self):
        return self.path, 0, "gate"


def gate_item_name(rr, rule, tests) -> str:
    """`general/*::max_drop[general/arithmetic]`, `ticket_triage/field_match::max_drop[difficulty=hard]`."""
    if rr.test == "required":
        return f"required[{rr.metric}]"
    pattern = rule.metric if rule is not None else rr.rule.split(" ", 1)[0]
    test = rr.test
    if test in ("-", "slice") and rule is not None:  # skipped: name it by the rule's own tests
        test = "+".join(t for t in tests if getattr(rule, t) not in (None, False))
    params = [p for p in (rr.metric if rr.metric != pattern else None, rr.slice) if p]
    return f"{pattern}::{test}" + (f"[{','.join(params)}]" if params else "")


class GateFailed(AssertionError):
    """A gate rule blocks promotion."""


class GateItem(pytest.Item):
    def __init__(self, *, result, lineno: int, **kw):
        super().__init__(**kw)
        self.result, self.lineno = result, lineno

    def runtest(self) -> None:
        r = self.result
        self.user_properties += [(k, v) for k, v in (("rule", r.rule), ("metric", r.metric), ("slice", r.slice),
                                                     ("verdict", r.verdict), ("baseline", r.baseline), ("candidate", r.candidate),
                                                     ("delta", r.delta), ("ci", r.ci), ("n", r.n)) if v is not None]
        if r.blocking:
            raise GateFailed(r.reason)

    def repr_failure(self, excinfo, style=None):
        if not isinstance(excinfo.value, GateFailed):
            return super().repr_failure(excinfo, style)
        r = self.result
        state = self.config.stash[STATE]
        def num(x) -> str:
            return "-" if x is None else f"{x:.3f}"

        lines = [f"{r.metric}{f' [{r.slice}]' if r.slice else ''} {r.test}: {r.verdict}: {r.reason}",
                 f"rule       {r.rule}" + (f"  ({r.note})" if r.note else ""),
                 f"baseline   {num(r.baseline)}   candidate {num(r.candidate)}"
                 + (f"   delta {r.delta:+.3f}" if r.delta is not None else "")
                 + (f" [95% CI {r.ci[0]:+.3f}, {r.ci[1]:+.3f}]" if r.ci else "")
                 + (f"   n={r.n}" if r.n else "") + (f"   p={r.p_value:.3g}" if r.p_value is not None else ""),
                 f"policy     {state.policy.name}; baseline {state.baseline_label}; candidate {state.out_dir}"]
        return "\n".join(lines)

    def reportinfo(self):
        return self.path, self.lineno, f"gate::{self.name}"


# ---- session hooks ------------------------------------------------------------------------
@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """After selection, before the first test: generate every selected case once, then the gate."""
    state = session.config.stash.get(STATE, None)
    if state is None or session.config.option.collectonly:
        return
    if session.testsfailed and not session.config.option.continue_on_collection_errors:
        return  # pytest stops on collection errors; do no model work
    wanted: dict[str, tuple[object, set[str]]] = {}
    for it in session.items:
        if isinstance(it, CaseItem):
            wanted.setdefault(it.suite.name, (it.suite, set()))[1].add(it.case.id)
        elif isinstance(it, ThresholdItem):  # selected alone, it judges the whole suite
            wanted.setdefault(it.suite.name, (it.suite, set()))
    if not wanted:
        return
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    say = tr.write_line if tr is not None else (lambda s: None)
    from harness.errors import HarnessError

    try:
        state.evaluate(wanted, say)
    except HarnessError as e:
        raise pytest.UsageError(f"harness: {e}") from None
    if state.decision is not None:
        root = GateRoot.from_parent(session, name="gate", nodeid="gate")
        session.items.extend(session.genitems(root))


def _fmt_metric(m: dict) -> tuple[str, str]:
    v, ci = m.get("value"), m.get("ci")
    if v is None or v != v:
        return "-", ""
    if m["kind"] == "latency":
        return f"{v:.2f} s", ""
    if m["kind"] == "mean":
        return f"{v:.1f}", (f"[{ci[0]:.1f}, {ci[1]:.1f}]" if ci else "")
    return f"{v:.3f}", (f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def _table(header: list[str], rows: list[list[str]], indent: str = "  ") -> list[str]:
    """Plain-text columns (CI logs have no colours): first column left, the rest right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def fmt(row) -> str:
        cells = (str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        return (indent + "  ".join(cells)).rstrip()

    return [fmt(header), *(fmt(r) for r in rows)]


HEADLINE_COLUMNS = 6


def summary_lines(state: HarnessState) -> list[str]:
    """Per suite: metrics (value, 95 % interval, n), headline rates per slice, threshold; then the gate."""
    lines = []
    any_r = next(iter(state.results.values()))
    adapter = f"adapter {any_r.adapter_hash[:12]}" if any_r.adapter_hash else "no adapter"
    lines.append(f"model {state.model} (fingerprint {any_r.model_fingerprint[:12]}, {adapter}); results in {state.out_dir}")
    for name, r in state.results.items():
        suite = state.suites[name]
        rate, n, failed = state.rates[name]
        head = f"{name}: {n} cases, pass rate {rate:.3f}"
        t = suite.spec.min_pass_rate
        if t is not None:
            head += (f" >= min_pass_rate {t:g}: met, {len(failed)} failing case(s) tolerated (xfail)" if meets(rate, t)
                     else f" < min_pass_rate {t:g}: NOT met")
        lines += ["", head]
        metrics = r.metrics
        rows = [[k.split("/", 1)[1], *_fmt_metric(m), str(m["n"])] for k, m in metrics.items()]
        lines += _table(["metric", "value", "95% CI", "n"], rows)
        heads = [k for k in metrics if metrics[k]["kind"] == "rate" and "." not in k.split("/", 1)[1] and r.summary["slices"].get(k)]
        heads = sorted(heads, key=lambda k: not k.endswith("/pass_rate"))[:HEADLINE_COLUMNS]
        if heads:
            keys = sorted({s for h in heads for s in r.summary["slices"][h]})
            srows = []
            for key in keys:
                cells = []
                for h in heads:
                    m = r.summary["slices"][h].get(key)
                    cells.append(f"{m['value']:.2f} (n={m['n']})" if m else "-")
                srows.append([key, *cells])
            lines += [""] + _table(["slice", *(h.split("/", 1)[1] for h in heads)], srows)
    d = state.decision
    if d is not None:
        counts = ", ".join(f"{v} {k}" for k, v in sorted(d.counts.items()))
        lines += ["", f"gate (policy {d.policy}) vs {state.baseline_label}: {'PASSED' if d.passed else 'FAILED'} "
                      f"({len(d.blocking)} blocking; {counts})"]
        for r in d.blocking:
            lines.append(f"  blocking: {r.metric}{f' [{r.slice}]' if r.slice else ''} {r.test}: {r.reason}")
    return lines


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None or not state.results:
        return
    terminalreporter.write_sep("=", "harness eval summary")
    for line in summary_lines(state):
        terminalreporter.write_line(line)

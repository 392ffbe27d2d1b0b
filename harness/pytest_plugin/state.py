"""One pytest session's harness state: options, the suites collected, the one batched
evaluation (through `run_eval`, the library's entry point), the baseline and the gate decision."""

from __future__ import annotations

from pathlib import Path

import pytest


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
        """The selected cases of every wanted suite (all of a suite whose set is empty), in one
        model load; a selection is timed on the whole suite's latency sample when a baseline is
        compared (so latency stays paired), else not timed."""
        import tempfile
        import time

        from harness.evals import run_eval
        from harness.paths import harness_home

        n = sum(len(ids) or len(s.cases) for s, ids in wanted.values())
        say(f"harness: evaluating {n} cases of {len(wanted)} suite(s) on {self.model}"
            + (f" + adapter {self.adapter}" if self.adapter else ""))
        if self.out:
            out = Path(self.out)
        else:
            root = harness_home() / "results"
            root.mkdir(parents=True, exist_ok=True)
            out = Path(tempfile.mkdtemp(prefix=time.strftime("pytest-%Y%m%d-%H%M%S-"), dir=root))

        def done(r) -> None:
            self.results[r.suite] = r
            self._index(r)
            t = r.summary.get("timing", {})
            say(f"harness: {r.suite}: {len(r.outputs)} cases, {t.get('generated', 0)} generated, "
                f"{t.get('from_cache', 0)} from cache, {t.get('eval_s', 0):.1f} s")

        _, self.out_dir = run_eval([s for s, _ in wanted.values()], self.model, self.adapter, out,
                                   dtype=self.dtype, device=self.device, arm="candidate" if self.adapter else "base",
                                   select={name: ids for name, (_, ids) in wanted.items()},
                                   time_selection=self.baseline is not None, on_result=done)
        if self.baseline is not None:
            self._decide(partial=any(ids and len(ids) < len(s.cases) for s, ids in wanted.values()))

    def _decide(self, partial: bool) -> None:
        from harness.errors import ConfigError
        from harness.gates import compare, decide

        try:
            self.decision = decide(compare(self.baseline, self.results), self.policy)
        except ConfigError as e:
            if not partial:
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

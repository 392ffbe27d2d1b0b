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

from pathlib import Path

import pytest

# harness modules beyond this package are imported inside functions: this package is imported by
# every pytest run on a machine where the harness is installed, and must cost nothing there.
from harness.pytest_plugin.gate_items import GateRoot
from harness.pytest_plugin.items import CaseItem, SuiteFile, ThresholdItem
from harness.pytest_plugin.state import STATE, HarnessState
from harness.pytest_plugin.summary import summary_lines


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


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None or not state.results:
        return
    terminalreporter.write_sep("=", "harness eval summary")
    for line in summary_lines(state):
        terminalreporter.write_line(line)

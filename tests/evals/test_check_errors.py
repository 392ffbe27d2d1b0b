"""A check that raises marks the case `error`: counted and shown apart, left out of the metric and
the pass rate, named by the gate, reported by pytest as an error, never as the model failing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.evals import run_eval
from harness.gates import compare, decide
from harness.gates.policy import load_policy

BROKEN = {"c-01", "c-04", "c-07"}
SUITE = """\
name: fragile
version: 1
prompt:
  user: "{{ input.text }}"
generation:
  max_new_tokens: 2
checks:
  - check: regex
    id: answered
    pattern: "(?s).*"
  - check: "tests.evals.custom_checks:fragile"
    id: fragile
latency_sample: 0
"""


def write(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "suite.yaml").write_text(SUITE)
    cases = [{"id": f"c-{i:02d}", "input": {"text": f"Say {i}."}, "expected": {"broken": f"c-{i:02d}" in BROKEN}}
             for i in range(10)]
    (folder / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    return folder


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    return tmp_path / "home"


def test_an_erroring_check_is_counted_apart_and_the_gate_says_so(tiny_backend, tmp_path, home):
    suite = write(tmp_path / "suites" / "fragile")
    results, out = run_eval([suite], "tiny", out=tmp_path / "r", backend=tiny_backend)
    r = results["fragile"]
    rows = [json.loads(line) for line in (out / "fragile/results.jsonl").read_text().splitlines()]
    errored = {x["case_id"] for x in rows if x.get("error")}
    assert errored == BROKEN
    assert all("RuntimeError: cannot read this case" in x["error"] for x in rows if x.get("error"))
    m = r.metrics
    # the 7 good cases are scored (all pass); the 3 errors are neither passes nor failures
    assert m["fragile/fragile"]["n"] == 7 and m["fragile/fragile"]["value"] == 1.0 and m["fragile/fragile"]["errors"] == 3
    assert m["fragile/pass_rate"]["n"] == 7 and m["fragile/pass_rate"]["value"] == 1.0
    assert m["fragile/answered"]["n"] == 10 and "errors" not in m["fragile/answered"]
    summary = json.loads((out / "fragile/summary.json").read_text())
    assert summary["metrics"]["fragile/fragile"]["errors"] == 3

    policy = tmp_path / "policy.yaml"
    policy.write_text("name: t\non_insufficient: fail\nrules:\n  - metric: fragile/fragile\n    max_drop: 0.5\n")
    d = decide(compare(results, results), load_policy(policy))
    [rule] = d.rules
    assert rule.n == 7 and rule.errors == 3
    assert "3 case(s) not counted: the check raised on them" in rule.reason


def test_a_metric_whose_check_always_raises_cannot_pass_the_gate(tiny_backend, tmp_path, home):
    suite = write(tmp_path / "suites" / "fragile")
    cases = [json.loads(line) for line in (suite / "cases.jsonl").read_text().splitlines()]
    (suite / "cases.jsonl").write_text("".join(json.dumps({**c, "expected": {"broken": True}}) + "\n" for c in cases))
    results, _ = run_eval([suite], "tiny", out=tmp_path / "r", backend=tiny_backend)
    assert results["fragile"].metrics["fragile/fragile"] == {"value": None, "n": 0, "ci": None, "kind": "rate", "errors": 10}
    policy = tmp_path / "policy.yaml"
    policy.write_text("name: t\non_insufficient: fail\nrules:\n  - metric: fragile/fragile\n    min: 0.5\n")
    d = decide(compare(results, results), load_policy(policy))
    [rule] = d.rules
    assert rule.verdict == "insufficient_evidence" and rule.blocking and not d.passed
    assert "the check raised on all 10" in rule.reason


pytest_plugins = ["pytester"]


def test_pytest_reports_check_errors_as_errors_not_failures(pytester, tiny_model_dir, home, monkeypatch):
    write(pytester.path / "suites" / "fragile")
    pytester.makeini("[pytest]\n")
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    res = pytester.runpytest("suites", "--harness-model", str(tiny_model_dir), "--harness-out", "out",
                             "-p", "no:cacheprovider", "--junitxml", "junit.xml")
    res.assert_outcomes(passed=7, errors=3)
    res.stdout.fnmatch_lines(["*check fragile (tests.evals.custom_checks:fragile) raised RuntimeError: cannot read this case*"])

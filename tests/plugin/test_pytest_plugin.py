"""The pytest plugin on a tiny suite with the tiny random model, driven through `pytester`.

The suite's checks pass or fail by the case's `outcome` slice, not by what the random model
says: `answered` (regex `.*`) passes on any output, `magic_word` (a string no output contains)
applies only to the two `outcome: bad` cases, so exactly t-02 and t-07 fail (pass rate 0.8).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

BAD = {"t-02", "t-07"}
HARD = {"t-00", "t-03", "t-06", "t-09"}
CASES = [
    {"id": f"t-{i:02d}", "input": {"text": f"Case {i}: name a colour."}, "expected": None,
     "slices": {"difficulty": "hard" if f"t-{i:02d}" in HARD else "easy", "language": "en" if i % 2 else "de",
                "outcome": "bad" if f"t-{i:02d}" in BAD else "good"}}
    for i in range(10)
]
SUITE = """\
name: tiny
version: 1
prompt:
  system: Answer briefly.
  user: "{{ input.text }}"
generation:
  max_new_tokens: 4
checks:
  - check: regex
    id: answered
    pattern: "(?s).*"
  - check: contains
    id: magic_word
    value: zqxjvk
    where: {outcome: bad}
slices: [difficulty, language, outcome]
latency_sample: {latency}
"""
POLICY = """\
name: plugin-test
on_insufficient: fail
required: [tiny]
rules:
  - metric: tiny/answered
    min: 0.9
  - metric: tiny/pass_rate
    must_improve: true
  - metric: "tiny/*"
    max_drop: 0.05
    on_insufficient: pass
  - metric: tiny/answered
    slices: [difficulty]
    max_drop: 0.5
    min_n: 5
    on_insufficient: pass
"""


def write_suite(folder: Path, min_pass_rate: float | None = None, latency: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    extra = f"min_pass_rate: {min_pass_rate}\n" if min_pass_rate is not None else ""
    (folder / "suite.yaml").write_text(SUITE.replace("{latency}", str(latency)) + extra)
    (folder / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in CASES))
    return folder


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def run(pytester, tiny_model_dir, home, monkeypatch):
    """Run pytest on `suites/` of a pytester project with the tiny model; results go to `out/`."""
    monkeypatch.setenv("COLUMNS", "250")  # short test summary lines are cut at the terminal width

    pytester.makeini("[pytest]\n")  # the project folder is the rootdir: ids are relative to it

    def _run(*args, min_pass_rate=None, latency=0):
        write_suite(pytester.path / "suites" / "tiny", min_pass_rate, latency)
        return pytester.runpytest("suites", "--harness-model", str(tiny_model_dir), "--harness-out", "out",
                                  "-p", "no:cacheprovider", "--strict-markers", *args)

    return _run


def outputs(pytester) -> dict[str, dict]:
    rows = [json.loads(l) for l in (pytester.path / "out/tiny/outputs.jsonl").read_text().splitlines()]
    return {r["case_id"]: r for r in rows}


def test_collects_each_case_with_its_id_and_slice_markers(run, pytester):
    res = run("--collect-only", "-q")
    ids = [l for l in res.outlines if "::" in l]
    assert ids == [f"suites/tiny/suite.yaml::tiny::{c['id']}" for c in CASES]
    assert "harness: evaluating" not in res.stdout.str()  # collecting generates nothing
    assert not (pytester.path / "out").exists()
    hard = run("--collect-only", "-q", "-m", "difficulty_hard and language_en")
    assert [l.rsplit("::", 1)[1] for l in hard.outlines if "::" in l] == ["t-03", "t-09"]


def test_cases_assert_their_checks_and_generation_covers_only_selected(run, pytester):
    res = run("-m", "difficulty_hard")
    res.assert_outcomes(passed=4)
    assert set(outputs(pytester)) == HARD  # only the selected cases were generated
    res = run("-k", "t-03 or t-02")
    res.assert_outcomes(passed=1, failed=1)
    res.stdout.fnmatch_lines(["harness: tiny: 2 cases, 1 generated, 1 from cache*", "FAILED *::tiny::t-02 - 1 of 2 checks failed: magic_word*"])


def test_x_stops_at_the_first_failing_case(run):
    res = run("-x")
    res.assert_outcomes(passed=2, failed=1)  # t-00, t-01 pass; t-02 fails and stops the session
    assert res.ret == 1


def test_failure_shows_prompt_output_and_each_check(run, pytester):
    res = run("-k", "t-07")
    res.assert_outcomes(failed=1)
    out = outputs(pytester)["t-07"]["output"]
    text = res.stdout.str()
    assert "1 of 2 checks failed: magic_word (missing: ['zqxjvk'])" in text
    assert "system: Answer briefly." in text and "user: Case 7: name a colour." in text
    assert "output (" in text and out.strip().splitlines()[0] in text
    assert "  PASS answered\n  FAIL magic_word: missing: ['zqxjvk']" in text
    res.stdout.fnmatch_lines(["case t-07 (*/suites/tiny/cases.jsonl:8)  slices: difficulty=easy, language=en, outcome=bad"])


def test_min_pass_rate_met_turns_failing_cases_into_xfail(run):
    res = run("-rx", min_pass_rate=0.7)
    res.assert_outcomes(passed=9, xfailed=2)  # 8 cases + tiny::min_pass_rate
    assert res.ret == 0
    res.stdout.fnmatch_lines(["tiny: 10 cases, pass rate 0.800 >= min_pass_rate 0.7: met, 2 failing case(s) tolerated (xfail)",
                              "XFAIL *::tiny::t-02 - tolerated by min_pass_rate 0.7: tiny passes 8/10 = 0.800; failed magic_word*"])


def test_min_pass_rate_not_met_fails_its_item_and_the_cases(run):
    res = run(min_pass_rate=0.9)
    res.assert_outcomes(passed=8, failed=3)
    assert res.ret == 1
    res.stdout.fnmatch_lines(["FAILED *::tiny::min_pass_rate - tiny: pass rate 0.800 (8/10) < min_pass_rate 0.9; failed cases: t-02, t-07"])
    assert "so its failing cases fail" in res.stdout.str()


def test_junit_xml_holds_cases_thresholds_and_properties(run, pytester):
    res = run("--junitxml=report.xml", min_pass_rate=0.7)
    assert res.ret == 0
    cases = {tc.get("name"): tc for tc in ET.parse(pytester.path / "report.xml").iter("testcase")}
    assert set(cases) == {c["id"] for c in CASES} | {"min_pass_rate"}
    assert cases["t-00"].get("classname") == "suites.tiny.suite.yaml.tiny"
    skipped = cases["t-02"].find("skipped")
    assert skipped.get("type") == "pytest.xfail" and skipped.get("message").startswith("tolerated by min_pass_rate 0.7")
    props = {p.get("name"): p.get("value") for p in cases["t-02"].iter("property")}
    assert props["suite"] == "tiny" and json.loads(props["slices"])["outcome"] == "bad"
    assert cases["min_pass_rate"].find("failure") is None
    res = run("--junitxml=report.xml")  # no threshold: the failures are failures
    failure = {tc.get("name"): tc for tc in ET.parse(pytester.path / "report.xml").iter("testcase")}["t-02"].find("failure")
    assert failure.get("message").startswith("1 of 2 checks failed: magic_word")
    assert "user: Case 2: name a colour." in failure.text


def test_terminal_summary_and_cache(run):
    run()
    res = run()
    text = res.stdout.str()
    assert "harness: tiny: 10 cases, 0 generated, 10 from cache" in text
    res.stdout.fnmatch_lines(["*= harness eval summary =*", "model * (fingerprint *, no adapter); results in out",
                              "tiny: 10 cases, pass rate 0.800", "  metric * value * 95% CI * n",
                              "  answered * 1.000 * ?0.72, 1.00? * 10", "  pass_rate * 0.800 * 10",
                              "  slice * pass_rate * answered * magic_word", "  outcome=bad * 0.00 (n=2) * 1.00 (n=2) * 0.00 (n=2)"])


@pytest.fixture
def baseline(pytester, tiny_model_dir, home, tmp_path):
    from harness.evals import run_eval

    suite = write_suite(tmp_path / "suite-copy" / "tiny")
    _, out = run_eval([suite], str(tiny_model_dir), out=tmp_path / "baseline")
    (pytester.path / "policy.yaml").write_text(POLICY)
    return out


def metric_names(results: Path) -> list[str]:
    from harness.evals import load_results

    # what a wildcard drop rule reaches: the quality rates (token counts and latency only by name)
    return [m for m, v in load_results(results)["tiny"].metrics.items() if v["kind"] == "rate"]


def gate_cases(path: Path) -> dict[str, ET.Element]:
    return {f"{tc.get('classname')}::{tc.get('name')}": tc for tc in ET.parse(path).iter("testcase") if tc.get("classname").startswith("gate")}


def test_gate_rules_become_items_with_a_baseline(run, pytester, baseline):
    res = run("--harness-baseline", str(baseline), "--harness-policy", "policy.yaml", "--junitxml=report.xml", "-rfs")
    assert res.ret == 1  # must_improve cannot pass against the same model
    res.stdout.fnmatch_lines([
        "gate (policy plugin-test) vs */baseline: FAILED (1 blocking;*",
        "  blocking: tiny/pass_rate must_improve: no improvement: delta +0.000",
        "FAILED gate::tiny/pass_rate::must_improve - tiny/pass_rate must_improve: fail: no improvement: delta +0.000",
        "SKIPPED [[]1] policy.yaml: n=4 < min_n 5",
    ])
    assert "baseline   0.800   candidate 0.800   delta +0.000 [95% CI" in res.stdout.str()
    gates = gate_cases(pytester.path / "report.xml")
    assert set(gates) == {
        "gate.tiny/answered::min", "gate.tiny/pass_rate::must_improve",
        "gate.tiny/answered::max_drop[difficulty=easy]", "gate.tiny/answered::max_drop[difficulty=hard]",
    } | {f"gate.tiny/*::max_drop[{m}]" for m in metric_names(baseline)}  # the wildcard: one item per metric
    fail = gates["gate.tiny/pass_rate::must_improve"].find("failure")
    assert "no improvement" in fail.get("message") and "policy     plugin-test" in fail.text
    assert gates["gate.tiny/answered::min"].find("failure") is None
    skipped = gates["gate.tiny/answered::max_drop[difficulty=hard]"].find("skipped")
    assert skipped.get("message") == "n=4 < min_n 5"
    props = {p.get("name"): p.get("value") for p in gates["gate.tiny/answered::min"].iter("property")}
    assert props["verdict"] == "pass" and props["candidate"] == "1.0"


def test_gate_baseline_from_a_registry_run(run, pytester, baseline):
    from harness.evals import load_results
    from harness.registry import Registry

    r = load_results(baseline)["tiny"]
    with Registry() as reg:  # $HARNESS_HOME/registry.db, as `harness run` records it
        run_id = reg.create_run({"name": "plugin-test"}, kind="run", name="plugin-test")
        reg.record_eval(run_id, role="baseline", suite="tiny", suite_hash=r.suite_hash, metrics={}, results_path=str(r.path),
                        results_hash="", model_fingerprint=r.model_fingerprint, adapter_hash=None)
    res = run("--harness-baseline", run_id, "--harness-policy", "policy.yaml")
    # 8 cases pass, 2 fail; gate: min, slice easy and every wildcard metric pass, must_improve fails
    res.assert_outcomes(passed=8 + 2 + len(metric_names(baseline)), failed=2 + 1, skipped=1)
    assert f"vs run {run_id} (baseline)" in res.stdout.str()
    missing = run("--harness-baseline", "no-such-run")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    missing.stderr.fnmatch_lines(["*--harness-baseline 'no-such-run': neither a results folder nor a run id*"])


def test_adapter_is_attached_and_a_bad_model_is_a_usage_error(run, pytester, tmp_path, tiny_model_dir):
    from harness.models import adapter_fingerprint
    from tests.conftest import make_adapter

    adapter = make_adapter(tiny_model_dir, tmp_path / "lora")
    res = run("--harness-adapter", str(adapter), "-k", "t-00 or t-01")
    res.assert_outcomes(passed=2)
    res.stdout.fnmatch_lines([f"harness: evaluating 2 cases of 1 suite(s) on * + adapter {adapter}",
                              f"model * (fingerprint *, adapter {adapter_fingerprint(adapter)[:12]}); results in out"])
    summary = json.loads((pytester.path / "out/tiny/summary.json").read_text())
    assert summary["adapter_hash"] == adapter_fingerprint(adapter)
    bad = pytester.runpytest("suites", "--harness-model", str(tmp_path / "no-such-model"))
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["ERROR: harness: *no-such-model*"])


def test_gate_on_selected_cases_times_the_suites_latency_sample(run, pytester, tiny_model_dir, tmp_path):
    from harness.evals import run_eval

    _, base = run_eval([write_suite(tmp_path / "full" / "tiny", latency=3)], str(tiny_model_dir), out=tmp_path / "base")
    (pytester.path / "latency.yaml").write_text(
        "rules:\n  - metric: '*/latency_p50'\n    max_ratio: 1000\n  - metric: tiny/magic_word\n    max: 1\n")
    res = run("--harness-baseline", str(base), "--harness-policy", "latency.yaml", "-k", "t-02", "-rA", latency=3)
    res.assert_outcomes(failed=1, passed=2)  # the case; both rules (latency timed on the baseline's sample)
    res.stdout.fnmatch_lines(["PASSED gate::*/latency_p50::max_ratio[[]tiny/latency_p50]"])
    res = run("--harness-baseline", str(base), "--harness-policy", "latency.yaml", "-k", "t-03", latency=3)
    assert res.ret == pytest.ExitCode.USAGE_ERROR  # t-03 has no magic_word check: the rule fits nothing selected
    res.stderr.fnmatch_lines(["*metric 'tiny/magic_word' matches nothing*", "*select whole suites (no -k/-m) to gate on them"])


def test_invalid_suite_is_one_clear_collection_error(pytester, tiny_model_dir, home):
    folder = write_suite(pytester.path / "suites" / "tiny")
    (folder / "suite.yaml").write_text((folder / "suite.yaml").read_text().replace("check: regex", "check: regexx"))
    res = pytester.runpytest("suites", "--harness-model", str(tiny_model_dir), "-p", "no:cacheprovider")
    assert res.ret == pytest.ExitCode.INTERRUPTED
    res.stdout.fnmatch_lines(["*field 'checks.0.check': unknown check 'regexx'*"])
    assert "Traceback" not in res.stdout.str() and "harness: evaluating" not in res.stdout.str()


def test_plugin_is_inactive_without_harness_model(pytester, home):
    write_suite(pytester.path / "suites" / "tiny")
    pytester.makepyfile(test_plain="""
        import sys
        def test_plain():
            # the plugin imports nothing of the harness when it is off
            assert not any(m.startswith(("harness.evals", "harness.models", "torch")) for m in sys.modules)
    """)
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    res.assert_outcomes(passed=1)
    assert "harness:" not in res.stdout.str() and "harness eval summary" not in res.stdout.str()
    listed = pytester.runpytest_subprocess("--collect-only", "-q", "-p", "no:cacheprovider", "suites", "test_plain.py")
    assert [l for l in listed.outlines if "::" in l] == ["test_plain.py::test_plain"]
    usage = pytester.runpytest("--harness-baseline", "results/")
    assert usage.ret == pytest.ExitCode.USAGE_ERROR
    usage.stderr.fnmatch_lines(["*--harness-baseline needs --harness-model SPEC*"])


def test_a_baseline_computed_in_another_dtype_is_a_usage_error(run, pytester, baseline):
    """The session runs in the dtype `auto` picks; a baseline from another dtype is not compared."""
    from harness.evals import load_results

    ran = load_results(baseline)["tiny"].identity["dtype"]
    other = "float32" if ran != "float32" else "bfloat16"
    res = run("--harness-baseline", str(baseline), "--harness-policy", "policy.yaml", "--harness-dtype", other)
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines([f"*computed differently (dtype)*{ran}*{other}*"])
    same = run("--harness-baseline", str(baseline), "--harness-policy", "policy.yaml", "--harness-dtype", ran)
    assert same.ret == 1  # compared: must_improve fails against the same model, as above


def test_the_shipped_triage_suite_fails_a_model_that_writes_no_json(pytester, tiny_model_dir, home, monkeypatch):
    """`pytest suites/` must fail a model with 0 % valid JSON: the tiny random model writes none."""
    import shutil

    import yaml

    repo = Path(__file__).resolve().parents[2]
    shutil.copytree(repo / "suites/ticket_triage", pytester.path / "suites/ticket_triage")
    floor = yaml.safe_load((repo / "suites/ticket_triage/suite.yaml").read_text())["min_pass_rate"]
    assert floor >= 0.2  # set from measured numbers (README), far above a model that writes no JSON
    monkeypatch.setenv("COLUMNS", "250")
    pytester.makeini("[pytest]\n")
    res = pytester.runpytest("suites", "--harness-model", str(tiny_model_dir), "--harness-out", "out", "-p", "no:cacheprovider",
                             "-k", "tt-001 or tt-002 or tt-003 or tt-004 or tt-005 or tt-006 or min_pass_rate")
    assert res.ret == 1
    res.stdout.fnmatch_lines([f"FAILED *::ticket_triage::min_pass_rate - ticket_triage: pass rate 0.000 (0/6) < min_pass_rate {floor}*"])

"""Suite loading: every problem reported at once with file:line and field; shipped suites load."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.evals import load_suite, load_suites

REPO = Path(__file__).resolve().parents[2]
MINI = REPO / "tests/fixtures/suites/mini"


@pytest.fixture
def mini(tmp_path):
    dst = tmp_path / "mini"
    shutil.copytree(MINI, dst)
    return dst


def test_shipped_suites_load_and_meet_their_sizes():
    suites = {s.name: s for s in load_suites([REPO / "suites"])}
    assert set(suites) == {"ticket_triage", "safety", "general"}
    tt, sf, gen = suites["ticket_triage"], suites["safety"], suites["general"]
    assert len(tt.cases) >= 200
    assert {c.slices["difficulty"] for c in tt.cases} >= {"easy", "hard"}
    kinds = [c.slices["kind"] for c in sf.cases]
    assert kinds.count("harmful") >= 60 and kinds.count("benign") >= 60 and kinds.count("pii_probe") >= 1
    tasks = [c.slices["task"] for c in gen.cases]
    assert tasks.count("instructions") >= 60 and tasks.count("arithmetic") >= 40 and tasks.count("multiple_choice") >= 60
    # multiple choice is scored by log-likelihood: no generation for those cases
    assert not any(gen.needs_generation(c) for c in gen.cases if c.slices["task"] == "multiple_choice")


def test_suite_hash_follows_content(mini):
    h = load_suite(mini).hash
    assert load_suite(mini).hash == h
    (mini / "README.md").write_text("docs do not change identity")
    assert load_suite(mini).hash == h
    with open(mini / "cases.jsonl", "a") as f:
        f.write('{"id": "new", "input": {"text": "x"}, "slices": {"kind": "gen"}}\n')
    assert load_suite(mini).hash != h


def test_every_problem_reported_with_file_line_and_field(mini):
    lines = (mini / "cases.jsonl").read_text().splitlines()
    lines[2] = '{"id": "broken", "input": '  # broken JSON on line 3
    lines[4] = '{"input": {"text": "no id"}}'  # missing id on line 5
    (mini / "cases.jsonl").write_text("\n".join(lines) + "\n")
    y = (mini / "suite.yaml").read_text().replace("check: contains", "check: contians").replace("max_new_tokens: 8", "max_new_tokns: 8")
    (mini / "suite.yaml").write_text(y)
    with pytest.raises(ConfigError) as e:
        load_suite(mini)
    msg = str(e.value)
    assert "cases.jsonl:3: not valid JSON" in msg
    assert "cases.jsonl:5: field 'id': missing: add it" in msg
    assert "unknown check 'contians'" in msg and "checks.1.check" in msg
    assert "generation.max_new_tokns" in msg and "unknown key" in msg


def test_bad_check_params_and_templates(mini):
    y = (mini / "suite.yaml").read_text()
    y = y.replace("value: \"the\"", "valu: \"the\"").replace("{{ input.text }}", "{{ input.txt }}")
    (mini / "suite.yaml").write_text(y)
    with pytest.raises(ConfigError) as e:
        load_suite(mini)
    msg = str(e.value)
    assert "check 'contains'" in msg and "valu" in msg
    assert "prompt.user cannot be rendered" in msg and "txt" in msg


def test_duplicate_ids_and_where_on_unknown_slice(mini):
    with open(mini / "cases.jsonl", "a") as f:
        f.write('{"id": "m-00", "input": {"text": "dup"}, "slices": {"kind": "gen"}}\n')
    (mini / "suite.yaml").write_text((mini / "suite.yaml").read_text().replace("where: {kind: mc}", "where: {knd: mc}"))
    with pytest.raises(ConfigError) as e:
        load_suite(mini)
    assert "duplicate id 'm-00'" in str(e.value) and "'knd' is not a slice field" in str(e.value)


def test_cli_validate_exit_codes(mini):
    ok = subprocess.run([sys.executable, "-m", "harness.cli", "suites", "validate", str(mini)], capture_output=True, text=True)
    assert ok.returncode == 0 and "ok  mini" in ok.stdout
    (mini / "cases.jsonl").write_text('{"id": 1\n')
    bad = subprocess.run([sys.executable, "-m", "harness.cli", "suites", "validate", str(mini)], capture_output=True, text=True)
    assert bad.returncode == 2 and "cases.jsonl:1" in bad.stderr and "Traceback" not in bad.stderr


def test_parameters_are_cross_checked_against_the_cases(tmp_path):
    """Fields, source fields, slices and `where` filters that no case has are reported at load,
    not found later as a metric that is silently zero or missing."""
    import json

    d = tmp_path / "inv"
    d.mkdir()
    (d / "suite.yaml").write_text(
        "name: inv\nversion: 1\nprompt:\n  user: '{{ input.text }}'\nchecks:\n"
        "  - check: field_match\n    fields: [vendor, totl]\n"
        "  - check: grounded_fields\n    fields: [vendor]\n    source_field: body\n"
        "  - check: numeric\n    field: total\n"
        "  - check: exact_match\n    field: vendor\n    where: {difficulty: hrad}\n"
        "slices: [difficulty, region]\n")
    cases = [{"id": f"i-{i}", "input": {"text": "ACME invoice, total 12.50"}, "expected": {"vendor": "ACME", "total": "12.5" if i else "n/a"},
              "slices": {"difficulty": "easy"}} for i in range(3)]
    (d / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    with pytest.raises(ConfigError) as e:
        load_suite(d)
    text = "\n".join(e.value.problems)
    assert "field 'expected.totl': missing, and the check reads it" in text
    assert "field 'input.body': missing, and the check reads it" in text
    assert "cases.jsonl:1: field 'expected.total': a number (got 'n/a')" in text
    assert "'checks.3.where': {'difficulty': 'hrad'} matches no case (values in the cases: {'difficulty': ['easy']})" in text
    assert "no case has the slice 'region'" in text

"""Every CLI command has help text and a row in the README's command reference."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import build_parser
from harness.commands import load_all

COMMANDS = load_all()

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_has_help_and_is_documented(name):
    help_text, _ = COMMANDS[name]
    assert len(help_text) > 20, f"{name}: help text too short"
    assert re.search(rf"`harness {re.escape(name)}[ `]", README), f"`harness {name}` missing from README's command reference"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_help_runs(name):
    proc = subprocess.run([sys.executable, "-m", "harness.cli", *name.split(), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "usage: harness" in proc.stdout


def test_every_argument_has_help():
    parser = build_parser()
    for action in parser._subparsers._group_actions:
        for name, sub in action.choices.items():
            subs = [sub]
            if sub._subparsers:
                subs = list(sub._subparsers._group_actions[0].choices.values())
            for sp in subs:
                for a in sp._actions:
                    if a.dest not in ("help",) and not a.dest.startswith("_"):
                        assert a.help, f"{sp.prog}: argument {a.dest} has no help"


def test_top_level_help_lists_every_command():
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for name in COMMANDS:
        assert name.split()[0] in proc.stdout


def test_readme_check_reference_is_the_generated_one():
    from harness.evals.checks.registry import checks_markdown

    block = README.split("<!-- checks:start -->\n", 1)[1].split("\n<!-- checks:end -->", 1)[0]
    assert block == checks_markdown(), "README's check reference is stale: paste `harness checks list --markdown`"


def _readme_block(after: str, lang: str) -> str:
    """The fenced block of `lang` that follows the first occurrence of `after` in the README."""
    rest = README.split(after, 1)[1]
    return rest.split(f"```{lang}\n", 1)[1].split("\n```", 1)[0] + "\n"


def test_readme_suite_example_runs_as_written_and_scores_perfect_answers_as_perfect(tmp_path):
    suite = tmp_path / "suites" / "my_task"
    suite.mkdir(parents=True)
    (suite / "suite.yaml").write_text(_readme_block("### Writing a suite for your own task", "yaml"))
    (suite / "schema.json").write_text(_readme_block("`suites/my_task/schema.json`:", "json"))
    (suite / "cases.jsonl").write_text(_readme_block("`suites/my_task/cases.jsonl`", "json"), encoding="utf-8")
    (suite / "my_checks.py").write_text(_readme_block("`suites/my_task/my_checks.py`", "python"))
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "suites", "validate", "--oracle", str(suite)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "oracle: 2/2 perfect answers pass every check" in proc.stdout
    # and a wrong answer is caught by each check it breaks, the custom one included
    from harness.evals import load_suite
    from harness.evals.runner import score_case

    s = load_suite(suite)
    case = s.cases[1]
    rows = score_case(s, case, '{"vendor": "Muller", "total": "-1249"}', s.messages(case), {})
    assert {r["metric"] for r in rows if not r["passed"]} == {"field_match", "grounded_fields", "total_number", "total_positive"}

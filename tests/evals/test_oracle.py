"""`harness suites validate --oracle`: perfect answers pass every shipped suite's checks, and a
broken check is caught before any model runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.evals import load_suite
from harness.evals.oracle import check_oracle

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["ticket_triage", "safety", "general"])
def test_every_shipped_case_has_a_perfect_answer_that_passes(name):
    r = check_oracle(load_suite(REPO / "suites" / name))
    assert r.ok, {m: bad[:3] for m, bad in r.rejected.items()}
    assert not r.without and r.scored == r.cases


def test_a_planted_broken_check_is_caught(tmp_path):
    suite = tmp_path / "ticket_triage"
    shutil.copytree(REPO / "suites/ticket_triage", suite)
    yaml = (suite / "suite.yaml").read_text()
    # a plausible mistake that loads fine: grounding a label (category) as if it were extracted from the ticket
    (suite / "suite.yaml").write_text(yaml.replace("checks:\n", "checks:\n  - check: grounded_fields\n    id: category_grounded\n"
                                                              "    fields: [category]\n    source_field: ticket\n", 1))
    load_suite(suite)  # nothing to see at load
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "suites", "validate", "--oracle", str(suite)],
                          capture_output=True, text=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "oracle: FAILED: checks reject perfect answers" in proc.stdout
    assert "category_grounded: rejects" in proc.stdout and "(text not in source)" in proc.stdout
    assert "json_schema" not in proc.stdout and "field_match" not in proc.stdout  # only the broken check is named

"""The CI recipe in examples/ci: the workflow's steps, the helper, and gate.sh end to end on the
tiny model (a fetched adapter gated against the base; its exit status is the gate's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from tests.plugin.test_pytest_plugin import POLICY, write_suite

REPO = Path(__file__).resolve().parents[2]
CI = REPO / "examples/ci"


def test_workflow_trains_gates_comments_reports_and_promotes_on_main():
    wf = yaml.safe_load((CI / "github-actions.yml").read_text())
    steps = wf["jobs"]["gate"]["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    for command in ("make install", "harness run examples/ticket_triage/ci-run.yaml", "examples/ci/run_paths.py",
                    "harness gate --baseline", "--summary-md gate.md", "pytest suites/", "--harness-baseline",
                    "--junitxml evals.xml", 'harness promote "${{ steps.run.outputs.run_id }}" --channel production'):
        assert command in runs, command
    by_name = {s.get("name"): s for s in steps}
    assert by_name["Post the gate summary on the pull request"]["uses"].startswith("actions/github-script")
    promote = by_name["Promote to production"]["if"]
    assert "refs/heads/main" in promote and "steps.gate.outputs.exit == '0'" in promote
    assert list(by_name).index("Fail when the gate failed") < list(by_name).index("Promote to production")


def test_gate_script_is_strict_bash():
    script = CI / "gate.sh"
    assert os.access(script, os.X_OK)
    assert "set -euo pipefail" in script.read_text()
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_run_paths_reads_a_recorded_run(tmp_path, monkeypatch):
    from harness.registry import Registry

    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(b"x")
    with Registry() as reg:
        run_id = reg.create_run({"base_model": "smollm2-135m-instruct"}, kind="run", name="ci")
        for role in ("baseline", "candidate"):
            reg.record_eval(run_id, role=role, suite="tiny", suite_hash="h", metrics={}, results_path=str(tmp_path / role / "tiny"),
                            results_hash="", model_fingerprint="f", adapter_hash=None)
        digest = reg.add_adapter(adapter, method="lora", base_fingerprint="f", run_id=run_id)
        info = json.dumps(reg.show(run_id), default=str)
    out = subprocess.run([sys.executable, str(CI / "run_paths.py")], input=info, capture_output=True, text=True, check=True).stdout
    paths = dict(line.split("=", 1) for line in out.splitlines())
    assert paths["model"] == "smollm2-135m-instruct"
    assert paths["baseline"] == str(tmp_path / "baseline") and paths["candidate"] == str(tmp_path / "candidate")
    assert digest in paths["adapter"] and Path(paths["adapter"]).is_dir()


def test_gate_script_gates_a_fetched_adapter_and_returns_the_gates_exit_status(tmp_path, tiny_model_dir):
    from tests.conftest import make_adapter

    suite = write_suite(tmp_path / "suites" / "tiny")
    (tmp_path / "policy.yaml").write_text(POLICY)
    adapter = make_adapter(tiny_model_dir, tmp_path / "fetched")
    env = dict(os.environ, HARNESS_HOME=str(tmp_path / "home"), OUT=str(tmp_path / "out"), SUITES=str(suite.parent),
               MODEL=str(tiny_model_dir), POLICY=str(tmp_path / "policy.yaml"), CANDIDATE_ADAPTER=str(adapter), PROMOTE="1",
               HARNESS=str(REPO / ".venv/bin/harness"), PYTHON=str(REPO / ".venv/bin/python"))
    proc = subprocess.run(["bash", str(CI / "gate.sh")], env=env, capture_output=True, text=True, timeout=600)
    # the same pass rate before and after: the policy's must_improve rule fails the gate
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "gate failed (exit 1)" in proc.stderr
    assert "Gate failed" in (tmp_path / "out/gate.md").read_text()
    assert json.loads((tmp_path / "out/gate.json").read_text())["passed"] is False
    cases = {f"{tc.get('classname')}::{tc.get('name')}": tc for tc in ET.parse(tmp_path / "out/evals.xml").iter("testcase")}
    assert cases["gate.tiny/pass_rate::must_improve"].find("failure") is not None
    assert sum(1 for k in cases if k.startswith("suites.tiny") or "tiny.suite.yaml" in k) == 10

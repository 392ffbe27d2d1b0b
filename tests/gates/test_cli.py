"""`harness compare` and `harness gate` on real results from the tiny model, with exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MINI = REPO / "tests/fixtures/suites/mini"


@pytest.fixture(scope="module")
def results(tiny_model_dir, tmp_path_factory):
    from harness.evals import run_eval
    from harness.models import HFBackend
    from tests.conftest import make_adapter

    root = tmp_path_factory.mktemp("gate")
    backend = HFBackend.from_spec(str(tiny_model_dir))
    run_eval([MINI], "tiny", out=root / "base", backend=backend, use_cache=False)
    run_eval([MINI], "tiny", out=root / "same", backend=backend, use_cache=False)
    adapter = make_adapter(tiny_model_dir, root / "lora", "lora")
    run_eval([MINI], "tiny", adapter=adapter, out=root / "cand", backend=backend, use_cache=False)
    other = "float32" if backend.dtype != "float32" else "bfloat16"
    run_eval([MINI], "tiny", out=root / "other-dtype", backend=HFBackend.from_spec(str(tiny_model_dir), dtype=other),
             use_cache=False)
    return root


def harness(*args):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True)


def test_compare_table_and_json(results):
    p = harness("compare", str(results / "base"), str(results / "cand"), "--json")
    assert p.returncode == 0, p.stderr
    c = json.loads(p.stdout)
    m = c["metrics"]["mini/mc"]
    assert m["n"] == 6 and len(m["ci"]) == 2 and m["p_value"] is not None
    assert c["candidate"]["adapter_hash"] and not c["baseline"]["adapter_hash"]
    table = harness("compare", str(results / "base"), str(results / "cand"), "--slices")
    assert table.returncode == 0 and "difficulty=hard" in table.stdout


def test_gate_exit_codes(results, tmp_path):
    ok = tmp_path / "ok.yaml"
    ok.write_text("name: ok\nrules:\n  - metric: mini/mc\n    max_drop: 0.9\n")
    strict = tmp_path / "strict.yaml"
    strict.write_text("name: strict\nrules:\n  - metric: mini/mc\n    must_improve: true\n  - metric: mini/json_valid\n    min: 0.99\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nrules:\n  - metric: mini/mc\n    max_dorp: 0.1\n")
    md = tmp_path / "summary.md"
    p = harness("gate", "--baseline", str(results / "base"), "--candidate", str(results / "same"), "--policy", str(ok), "--summary-md", str(md))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Gate passed" in md.read_text()
    p = harness("gate", "--baseline", str(results / "base"), "--candidate", str(results / "cand"), "--policy", str(strict), "--json", str(tmp_path / "d.json"))
    assert p.returncode == 1
    d = json.loads((tmp_path / "d.json").read_text())
    assert d["passed"] is False and {r["test"] for r in d["rules"]} == {"must_improve", "min"}
    p = harness("gate", "--baseline", str(results / "base"), "--candidate", str(results / "cand"), "--policy", str(bad))
    assert p.returncode == 2 and "max_dorp" in p.stderr and "Traceback" not in p.stderr


def test_default_policy_on_partial_results_fails_on_required_suites(results):
    p = harness("gate", "--baseline", str(results / "base"), "--candidate", str(results / "same"))
    # the default policy requires the three shipped suites: only `mini` is here
    assert p.returncode == 1 and "required" in p.stdout


def test_gate_refuses_results_of_another_dtype_cleanly(results, tmp_path):
    """The same model in fp32 and bf16 is two different runs: the gate will not mix them."""
    ok = tmp_path / "ok.yaml"
    ok.write_text("name: ok\nrules:\n  - metric: mini/mc\n    max_drop: 0.9\n")
    p = harness("gate", "--baseline", str(results / "other-dtype"), "--candidate", str(results / "same"), "--policy", str(ok))
    assert p.returncode == 2, p.stdout + p.stderr
    assert "computed differently (dtype)" in p.stderr and "--dtype" in p.stderr and "Traceback" not in p.stderr
    p = harness("compare", str(results / "base"), str(results / "other-dtype"))
    assert p.returncode == 2 and "computed differently" in p.stderr

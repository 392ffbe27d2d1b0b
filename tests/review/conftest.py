"""A recorded run for the review tests, without training: tiny-model outputs on the `mini` suite
for the baseline and for a random LoRA candidate, registry rows with each role's results path.

One candidate output carries an XSS payload and one case has the same output on both sides."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MINI = REPO / "tests/fixtures/suites/mini"
XSS = "<script>alert(1)</script> <img src=x onerror=alert(2)>"
SECRET = b"review-tests-fixed-secret"


@pytest.fixture(scope="session")
def recorded_review(tiny_model_dir, tmp_path_factory):
    from harness.evals import load_results, run_eval
    from harness.models import HFBackend
    from harness.registry import Registry
    from tests.conftest import edit_outputs, make_adapter

    root = tmp_path_factory.mktemp("review-run")
    backend = HFBackend.from_spec(str(tiny_model_dir))
    spec = str(tiny_model_dir)
    run_eval([MINI], spec, out=root / "base", backend=backend, use_cache=False, latency_n=0)
    adapter = make_adapter(tiny_model_dir, root / "lora", "lora")
    run_eval([MINI], spec, adapter=adapter, out=root / "cand", backend=backend, use_cache=False, arm="candidate", latency_n=0)
    backend.set_adapter(None)
    edit_outputs(root / "cand", {"m-02": f"the answer {XSS}", "m-05": "same text on both sides"})
    edit_outputs(root / "base", {"m-05": "same text on both sides"})

    with Registry(root / "registry.db") as reg:
        run_id = reg.create_run({"name": "review-test", "base_model": spec, "suites": [str(MINI)]}, kind="run")
        for role, folder in (("baseline", root / "base"), ("candidate", root / "cand")):
            for name, r in load_results(folder).items():
                reg.record_eval(run_id, role=role, suite=name, suite_hash=r.suite_hash, metrics={}, results_path=str(r.path),
                                results_hash=r.summary["results_sha256"], model_fingerprint=r.model_fingerprint,
                                adapter_hash=r.adapter_hash)
        reg.update_run(run_id, status="finished", stage="done")
    outputs = {role: {o["case_id"]: o["output"] for o in load_results(root / folder)["mini"].outputs}
               for role, folder in (("baseline", "base"), ("candidate", "cand"))}
    return {"root": root, "registry": root / "registry.db", "run_id": run_id, "outputs": outputs,
            "adapter_hash": load_results(root / "cand")["mini"].adapter_hash, "model_dir": tiny_model_dir}


@pytest.fixture
def run(recorded_review, tmp_path):
    """The recorded run with a registry of its own (a copy), so each test starts with no votes."""
    path = tmp_path / "registry.db"
    shutil.copy(recorded_review["registry"], path)
    return {**recorded_review, "registry": path}


@pytest.fixture
def reg(run):
    from harness.registry import Registry

    with Registry(run["registry"]) as r:
        yield r


@pytest.fixture
def server(run, reg):
    """The review server for reviewer "ann" on a free port, serving on a background thread."""
    from harness.review import make_server

    srv = make_server(run["run_id"], reg, reviewer="ann", secret=SECRET, port=0).start()
    yield srv
    srv.stop()

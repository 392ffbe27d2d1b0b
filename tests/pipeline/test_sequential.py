"""Sequential evaluation on the tiny model: a planted broken candidate is stopped early, a good one
is evaluated on every case; the gate plan before training, and `--strict`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.pipeline.test_pipeline import write_run

pytestmark = pytest.mark.slow
N_CASES = 60


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)  # the report stage writes reports/ in the working folder
    return tmp_path / "home"


def golden_suite(folder: Path, model_dir: Path) -> Path:
    """A suite whose expected answers are the base model's own greedy answers: the base passes
    every case, and a candidate passes a case only while it answers as the base did."""
    from harness.evals import run_eval

    folder.mkdir()
    (folder / "suite.yaml").write_text(yaml.safe_dump({
        "name": "golden", "version": 1, "description": "the base's answers as the reference",
        "prompt": {"user": "{{ input.text }}"}, "generation": {"max_new_tokens": 6},
        "checks": [{"check": "exact_match", "field": "answer"}], "slices": ["kind"], "latency_sample": 0}))
    cases = [{"id": f"g{i:02d}", "input": {"text": f"What colour is box {i} on shelf {i % 7}?"},
              "expected": {"answer": "?"}, "slices": {"kind": "gen"}} for i in range(N_CASES)]
    (folder / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    results, _ = run_eval([folder], str(model_dir), out=folder.parent / "golden-out", use_cache=False, invariance_n=0)
    answers = {o["case_id"]: o["output"] for o in results["golden"].outputs}
    for c in cases:
        c["expected"]["answer"] = answers[c["id"]]
    (folder / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    return folder


def sequential_run(tmp_path: Path, model_dir: Path, suite: Path, *, learning_rate: float, max_steps: int) -> Path:
    cfg_path = write_run(tmp_path, model_dir, max_steps=max_steps, save_steps=max_steps)
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["suites"] = [str(suite)]
    cfg["train"]["learning_rate"] = learning_rate
    cfg["eval"] = {"sequential": True, "looks": 4, "latency_sample": 0}
    (tmp_path / "policy.yaml").write_text("name: golden\nrequired: [golden]\nrules:\n  - metric: golden/exact_match\n"
                                          "    max_drop: 0.1\n    note: answers as the base did\n")
    cfg_path.write_text(yaml.safe_dump(cfg))
    return cfg_path


def test_a_broken_candidate_stops_early_and_a_good_one_is_evaluated_whole(tiny_model_dir, tmp_path, home):
    from harness.pipeline import run
    from harness.registry import Registry

    suite = golden_suite(tmp_path / "golden", tiny_model_dir)
    reg = Registry(home / "registry.db")

    broken_dir = tmp_path / "broken"
    broken_dir.mkdir()
    s = run(sequential_run(broken_dir, tiny_model_dir, suite, learning_rate=0.05, max_steps=12), reg)
    decision = json.loads(Path(s["summary_md"]).with_name("decision.json").read_text())
    seq = decision["sequential"]
    assert s["gate_passed"] is False and s["promoted"] is False
    assert seq["stopped"] == "fail" and seq["look"] < seq["looks"], seq
    assert seq["cases"]["golden"] < N_CASES and seq["of"]["golden"] == N_CASES
    assert "golden/exact_match max_drop" in seq["why"] and "failed on evidence" in seq["why"]
    # the record says how many cases were used and why, in the results as in the decision
    summary = json.loads((Path(s["candidate_results"]) / "golden" / "summary.json").read_text())
    assert summary["sequential"] == seq and summary["sampled"] == {"cases": seq["cases"]["golden"], "of": N_CASES}
    [rule] = [r for r in decision["rules"] if r["test"] == "max_drop"]
    assert rule["verdict"] == "fail" and rule["n"] == seq["cases"]["golden"]
    assert decision["confidence"] > 0.99  # judged at the look's boundary, not at 95 %
    assert "Sequential evaluation: stopped at look" in Path(s["summary_md"]).read_text()
    page = Path(s["report"]).read_text()
    assert 'id="sequential"' in page and "stopped at look" in page and 'id="plan"' in page
    gate = page[page.index('<section id="gate"'):page.index('<section id="metrics"')]
    assert "Δ [95% CI]" not in gate and re.search(r"Δ \[99\.\d+% CI\]", gate)  # the look's interval, named

    good_dir = tmp_path / "good"
    good_dir.mkdir()
    s = run(sequential_run(good_dir, tiny_model_dir, suite, learning_rate=1e-5, max_steps=2), reg)
    decision = json.loads(Path(s["summary_md"]).with_name("decision.json").read_text())
    seq = decision["sequential"]
    assert seq["stopped"] == "exhausted" and seq["look"] == seq["looks"] == 4, seq
    assert seq["cases"] == {"golden": N_CASES}
    assert s["gate_passed"] is True, decision["rules"]
    [rule] = [r for r in decision["rules"] if r["test"] == "max_drop"]
    assert rule["n"] == N_CASES and rule["verdict"] == "pass"


def test_the_plan_runs_before_training_and_strict_refuses_to_train(tiny_model_dir, tmp_path, home):
    from harness.errors import HarnessError
    from harness.pipeline import run
    from harness.registry import Registry

    cfg = write_run(tmp_path, tiny_model_dir)
    # the mini suite's 6 mc cases cannot show a 5-point margin
    (tmp_path / "policy.yaml").write_text("name: tight\nrules:\n  - metric: mini/mc\n    max_drop: 0.05\n")
    reg = Registry(home / "registry.db")
    with pytest.raises(HarnessError, match=r"cannot be decided .*mini/mc max_drop.*not training"):
        run(cfg, reg, strict=True)
    [row] = reg.runs()
    assert row["status"] == "failed" and row["stage"] == "plan" and not row["adapter_hash"]
    state = json.loads((home / "runs" / row["id"] / "state.json").read_text())
    assert "train" not in state["done"] and "baseline" in state["done"]
    plan = json.loads((home / "runs" / row["id"] / "plan.json").read_text())
    assert plan["undecidable"] == ["mini/mc max_drop"] and plan["baseline"] == state["done"]["baseline"]["results"]
    [r] = plan["rules"]
    assert r["source"] == "baseline" and r["n"] == 6 and r["needs"] > 6

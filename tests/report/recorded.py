"""A recorded run without training: real tiny-model results for the baseline and a random LoRA
candidate on the `mini` suite, a real paired comparison and gate decision, registry rows, and a
run folder laid out like the pipeline's (state.json with data checks, a plausible training
manifest and checkpoint selection; decision.json, comparison.json, summary.md).

One candidate output carries an XSS payload; a few outputs are edited (then re-scored) so that
cases flip both ways."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MINI = REPO / "tests/fixtures/suites/mini"
XSS = "<script>alert(1)</script> <img src=x onerror=alert(2)>"
RUN_NAME = "tiny <b>bold</b> run"

POLICY = """\
name: report-test
required: [mini]
rules:
  - metric: mini/mc
    max_drop: 0.5
  - metric: mini/json_valid
    must_improve: true
  - metric: mini/contains
    min: 0.5
  - metric: mini/pass_rate
    slices: [difficulty]
    max_drop: 0.5
    min_n: 5
  - metric: "*/latency_p50"
    max_ratio: 3.0
  - metric: mini/completion_tokens
    max_ratio: 2.0
"""


def _training_data(folder: Path) -> Path:
    rows = []
    for i in range(16):
        rows.append({"messages": [
            {"role": "system", "content": "Reply with JSON."},
            {"role": "user", "content": f"Summarise inventory record {i} for the warehouse team, please."},
            {"role": "assistant", "content": json.dumps({"item": i, "status": "ok" if i % 3 else "late"})},
        ]})
    rows.append({"messages": [{"role": "user", "content": "Who handles refunds?"},
                              {"role": "assistant", "content": "Write to jane.doe@acme-corp.io for refunds."}]})
    path = folder / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _manifest(steps: int = 12) -> dict:
    history = []
    for s in range(1, steps + 1):
        history.append({"step": s, "loss": round(2.6 * 0.86 ** s + 0.35 + 0.04 * (s % 3), 4)})
        if s % 4 == 0:
            history.append({"step": s, "eval_loss": round(2.4 * 0.9 ** s + 0.55 + (0.05 if s == 12 else 0), 4)})
    return {
        "method": "lora", "family": "sft", "steps": steps, "epochs": 3.0, "seed": 0, "device": "cpu",
        "trainable_parameters": 12288, "train_time_s": 4.2, "resumed_from": None,
        "data_records": {"train": 17, "validation": 0}, "loss_history": history,
        "final_metrics": {"train_loss": [h["loss"] for h in history if "loss" in h][-1],
                          "eval_loss": [h["eval_loss"] for h in history if "eval_loss" in h][-1]},
        "library_versions": {"python": "3.11", "torch": "2.13.0", "peft": "0.21"},
        "smoke_test": {"changed": 3, "of": 4},
    }


def build_recorded_run(root: Path, model_dir: Path) -> dict:
    from harness.data import check_data, data_hash
    from harness.evals import load_results, run_eval
    from harness.gates import compare, decide, load_policy
    from harness.models import HFBackend
    from harness.registry import Registry
    from tests.conftest import edit_outputs, make_adapter

    home = root / "home"
    # fp32: the flips below were chosen for these outputs (a bf16 run flips other cases too)
    backend = HFBackend.from_spec(str(model_dir), dtype="float32")
    spec = str(model_dir)
    run_eval([MINI], spec, out=root / "base", backend=backend, use_cache=False)
    adapter = make_adapter(model_dir, root / "lora", "lora")
    run_eval([MINI], spec, adapter=adapter, out=root / "cand", backend=backend, use_cache=False, arm="candidate")
    backend.set_adapter(None)
    # flips both ways: m-03 and m-04 now pass json_valid + contains; m-01 passed before and fails now
    edit_outputs(root / "base", {"m-01": '{"note": "the same as before"}'})
    edit_outputs(root / "cand", {"m-03": json.dumps({"answer": f"the {XSS}"}), "m-04": '{"answer": "the fix"}',
                                  "m-01": "the same as before, but not JSON"})
    run_eval([MINI], spec, out=root / "base", do_rescore=True)
    run_eval([MINI], spec, out=root / "cand", do_rescore=True)
    base, cand = load_results(root / "base"), load_results(root / "cand")
    comparison = compare(base, cand)
    (root / "policy.yaml").write_text(POLICY)
    decision = decide(comparison, load_policy(root / "policy.yaml"))

    reg = Registry(home / "registry.db")
    fp = base["mini"].model_fingerprint
    train_path = _training_data(root)
    report = check_data(train_path, suites=[str(MINI)]).to_dict()
    config = {"name": RUN_NAME, "base_model": spec, "suites": [str(MINI)], "policy": str(root / "policy.yaml"),
              "channel": "production", "train": {"method": "lora", "train_data": str(train_path), "max_steps": 12}}
    run_id = reg.create_run(config, kind="run", name=RUN_NAME, seeds={"train": 0})
    reg.register_base_model(spec, fp)
    dhash = data_hash(train_path)
    reg.register_dataset(str(train_path), dhash, 17, report=report)
    reg.update_run(run_id, stage="data_checks", dataset_hash=dhash, base_fingerprint=fp)
    adapter_hash = reg.add_adapter(adapter, method="lora", base_fingerprint=fp, run_id=run_id)
    for role, results in (("baseline", base), ("candidate", cand)):
        for name, r in results.items():
            reg.record_eval(run_id, role=role, suite=name, suite_hash=r.suite_hash,
                            metrics={k: v["value"] for k, v in r.metrics.items()}, results_path=str(r.path),
                            results_hash=r.summary["results_sha256"], model_fingerprint=r.model_fingerprint,
                            adapter_hash=r.adapter_hash)
    reg.record_gate(run_id, decision.to_dict(), decision.passed)
    reg.update_run(run_id, status="finished", stage="done")

    folder = home / "runs" / run_id
    folder.mkdir(parents=True)
    (folder / "comparison.json").write_text(json.dumps(comparison.to_dict(), indent=1, default=str))
    (folder / "decision.json").write_text(json.dumps(decision.to_dict(), indent=1, default=str))
    (folder / "summary.md").write_text(decision.to_markdown())
    train_dir = folder / "train"
    ckpts = [str(train_dir / f"checkpoint-{s}") for s in (4, 8, 12)]
    store_path = str(reg.adapter_path(adapter_hash))
    done = {
        "data_checks": {"train_data": {"path": str(train_path), "hash": dhash, "rows": 17,
                                       "blocking": [f["message"] for f in report["findings"] if f["severity"] == "error"],
                                       "report": report},
                        "override_reason": "test data: the address is a fixture", "seconds": 0.2},
        "baseline": {"results": str(root / "base"), "cached": False, "seconds": 3.1},
        "train": {"output_dir": str(train_dir / "adapter"), "checkpoints": ckpts, "manifest": _manifest(),
                  "method": "lora", "seconds": 5.0},
        "smoke_test": {"report": {"changed": 3, "of": 4}, "seconds": 0.4},
        "store_adapter": {"adapter_hash": adapter_hash, "path": store_path, "seconds": 0.1},
        "select_checkpoint": {"selected": ckpts[1], "why": "best mini/pass_rate on 18 validation cases: 0.222",
                              "scores": {ckpts[0]: 0.111, ckpts[1]: 0.222, ckpts[2]: 0.167, store_path: 0.167}},
        "candidate": {"results": str(root / "cand"), "seconds": 3.0},
        "gate": {"passed": decision.passed, "decision": str(folder / "decision.json"),
                 "comparison": str(folder / "comparison.json"), "summary_md": str(folder / "summary.md")},
        "record": {"adapter_hash": adapter_hash},
    }
    (folder / "state.json").write_text(json.dumps({"run_id": run_id, "config_path": str(root / "run.yaml"), "done": done},
                                                  indent=1))
    reg.close()
    return {"root": root, "home": home, "registry": home / "registry.db", "run_id": run_id, "adapter_hash": adapter_hash,
            "folder": folder, "comparison": comparison.to_dict(), "decision": decision.to_dict(), "model_dir": model_dir}

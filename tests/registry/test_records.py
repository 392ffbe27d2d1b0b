"""Records: base models, datasets, runs (config, environment, timings), adapters, evals, gates."""

from __future__ import annotations

import re

import pytest

from harness.registry import NotFound, Registry, RegistryError

from .conftest import BASE, fake_adapter, trained_run


def test_base_models_and_datasets_are_idempotent(reg):
    assert reg.register_base_model("smollm2-135m-instruct", BASE) == BASE
    assert reg.register_base_model("/local/copy", BASE) == BASE
    assert reg.get_base_model(BASE)["spec"] == "smollm2-135m-instruct"  # identity is the fingerprint
    assert reg.db["base_models"].count == 1
    h = reg.register_dataset("examples/train.jsonl", "d" * 64, 120, splits={"train": 100, "eval": 20})
    assert reg.register_dataset("examples/train.jsonl", "d" * 64, 120, report={"duplicates": 0}) == h
    row = reg.get_dataset(h)
    assert row["rows"] == 120 and row["splits"] == {"train": 100, "eval": 20} and row["report"] == {"duplicates": 0}
    assert reg.db["datasets"].count == 1


def test_create_run_records_config_hash_seeds_and_environment(reg):
    a = reg.create_run({"lr": 1e-4, "method": "lora"}, seeds={"train": 7}, name="first")
    b = reg.create_run({"method": "lora", "lr": 1e-4}, kind="dpo")
    assert re.fullmatch(r"run-\d{8}-\d{6}-[0-9a-f]{6}", a) and a != b
    ra, rb = reg.get_run(a), reg.get_run(b)
    assert ra["config_hash"] == rb["config_hash"]  # key order does not change the hash
    assert ra["config"] == {"lr": 1e-4, "method": "lora"} and ra["seeds"] == {"train": 7} and ra["name"] == "first"
    assert ra["status"] == "running" and rb["kind"] == "dpo"
    env = ra["environment"]
    assert env["python"].count(".") == 2 and env["host"] and env["platform"]
    assert {"torch", "transformers", "peft", "trl"} <= set(env["libraries"])
    assert env["libraries"]["sqlite-utils"]
    assert "git" in env  # a dict with the commit inside a repository, None outside one
    assert [r["id"] for r in reg.runs()] == [b, a]
    assert [r["id"] for r in reg.runs(limit=1)] == [b]


def test_update_run_tracks_stage_timings_status_and_fields(reg):
    run = reg.create_run({"lr": 1})
    reg.update_run(run, stage="data")
    reg.update_run(run, stage="train", dataset_hash="d" * 64)
    reg.update_run(run, stage="train")  # same stage again: no new timing
    r = reg.update_run(run, status="failed", error="CUDA out of memory", eval_dir="/tmp/x")
    assert list(r["timings"]) == ["data", "train"]
    for t in r["timings"].values():
        assert t["finished"] >= t["started"] and t["seconds"] >= 0
    assert r["status"] == "failed" and r["finished"] and r["error"] == "CUDA out of memory"
    assert r["dataset_hash"] == "d" * 64 and r["extra"] == {"eval_dir": "/tmp/x"}
    with pytest.raises(RegistryError, match="not one of running, finished, failed, interrupted"):
        reg.update_run(run, status="done")
    with pytest.raises(NotFound, match="no run 'run-nope'.*harness runs"):
        reg.update_run("run-nope", status="failed")


def test_add_adapter_links_the_run(reg, tmp_path):
    run = reg.create_run({"lr": 1})
    h = reg.add_adapter(fake_adapter(tmp_path / "a", 1), method="lora", base_fingerprint=BASE, run_id=run)
    r = reg.get_run(run)
    assert r["adapter_hash"] == h and r["base_fingerprint"] == BASE
    row = reg.get_adapter(h)
    assert row["method"] == "lora" and row["n_files"] == 2 and row["store_path"] == str(reg.store.root / h)
    assert reg.add_adapter(fake_adapter(tmp_path / "again", 1), method="lora", base_fingerprint=BASE) == h
    assert reg.db["adapters"].count == 1
    with pytest.raises(NotFound):
        reg.add_adapter(tmp_path / "a", method="lora", base_fingerprint=BASE, run_id="run-missing")
    with pytest.raises(NotFound, match="no adapter"):
        reg.adapter_path("0" * 64)


def test_evals_gates_and_show(reg, tmp_path):
    run = trained_run(reg, tmp_path, 1)
    reg.record_eval(run, role="baseline", suite="extraction", suite_hash="s" * 64, metrics={"extraction/exact": 0.6},
                    results_path="b", results_hash="x", model_fingerprint=BASE, adapter_hash=None)
    second = reg.record_gate(run, {"rules": []}, False)
    info = reg.show(run)
    assert [e["role"] for e in info["evals"]] == ["candidate", "baseline"]
    assert info["evals"][0]["metrics"]["extraction/exact"]["value"] == 0.8
    assert [g["passed"] for g in info["gates"]] == [True, False] and reg.latest_gate(run)["id"] == second
    assert info["adapter"]["hash"] == info["run"]["adapter_hash"] and info["active_on"] == []
    with pytest.raises(NotFound):
        reg.record_gate("run-missing", {}, True)


def test_delete_adapter_is_audited_and_refused_while_serving(reg, tmp_path):
    a, b = trained_run(reg, tmp_path, 1), trained_run(reg, tmp_path, 2)
    ha, hb = reg.get_run(a)["adapter_hash"], reg.get_run(b)["adapter_hash"]
    reg.promote(a, "production")
    with pytest.raises(RegistryError, match="active on channel"):
        reg.delete_adapter(ha, reason="cleanup")
    with pytest.raises(RegistryError, match="needs a reason"):
        reg.delete_adapter(hb, reason=" ")
    reg.delete_adapter(hb, reason="superseded", actor="ops")
    assert hb not in reg.store and reg.get_adapter(hb)["deleted"]
    assert [v["hash"] for v in reg.verify()] == [ha]
    entry = reg.audit(limit=1)[0]
    assert (entry["action"], entry["adapter_hash"], entry["actor"], entry["reason"]) == ("delete", hb, "ops", "superseded")
    with pytest.raises(NotFound, match="deleted"):
        reg.adapter_path(hb)


def test_read_only_open_of_a_missing_registry_is_refused(tmp_path):
    with pytest.raises(NotFound, match="no registry at"):
        Registry(tmp_path / "nothing.db", create=False)
    assert not (tmp_path / "nothing.db").exists()

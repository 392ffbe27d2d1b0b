"""Channels: gated promotion, forced promotion with a reason, exact rollback, status, export."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from harness.registry import PromotionRefused, RegistryError, RollbackRefused, TamperedAdapter

from .conftest import OTHER_BASE, trained_run


def _adapter(reg, run):
    return reg.get_run(run)["adapter_hash"]


def test_promotion_is_refused_without_a_passing_gate(reg, tmp_path):
    no_gate = trained_run(reg, tmp_path, 1, passed=None)
    failed = trained_run(reg, tmp_path, 2, passed=False)
    with pytest.raises(PromotionRefused, match=f"run {no_gate} has no gate decision.*--force --reason"):
        reg.promote(no_gate, "production")
    with pytest.raises(PromotionRefused, match=r"latest gate decision \(#\d+, .*\) failed on extraction/exact max_drop"):
        reg.promote(failed, "production")
    assert reg.channels() == [] and reg.db["channel_history"].count == 0 and reg.db["audit_log"].count == 0


def test_the_latest_gate_decides(reg, tmp_path):
    run = trained_run(reg, tmp_path, 1, passed=False)
    reg.record_gate(run, {"rules": []}, True)
    assert reg.promote(run, "production")["adapter_hash"] == _adapter(reg, run)
    other = trained_run(reg, tmp_path, 2)
    reg.record_gate(other, {"rules": []}, False)
    with pytest.raises(PromotionRefused):
        reg.promote(other, "production")


def test_promotion_onto_another_base_is_refused(reg, tmp_path):
    first = trained_run(reg, tmp_path, 1)
    reg.promote(first, "production")
    foreign = trained_run(reg, tmp_path, 2, base=OTHER_BASE)
    with pytest.raises(PromotionRefused, match="trained on base eeeeeeeeeeee but channel production serves base "
                                               r"ffffffffffff \(smollm2-135m-instruct\)"):
        reg.promote(foreign, "production")
    assert reg.promote(foreign, "experimental")["base_fingerprint"] == OTHER_BASE  # a new channel takes any base


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_force_without_a_reason_is_refused(reg, tmp_path, reason):
    run = trained_run(reg, tmp_path, 1, passed=False)
    with pytest.raises(PromotionRefused, match="--force needs --reason"):
        reg.promote(run, "production", force=True, reason=reason)
    assert reg.channels() == []


def test_forced_promotion_is_recorded_with_its_reason(reg, tmp_path):
    run = trained_run(reg, tmp_path, 1, passed=False)
    entry = reg.promote(run, "production", force=True, reason="hotfix approved by on-call", actor="alice")
    assert entry["forced"] and entry["reason"] == "hotfix approved by on-call"
    audit = reg.audit()[0]
    assert (audit["action"], audit["forced"], audit["actor"], audit["reason"]) == \
        ("promote", True, "alice", "hotfix approved by on-call")
    assert "failed" in audit["details"]["overridden"][0]
    assert reg.status()[0]["last_move"]["forced"]


def test_actor_defaults_to_the_user(reg, tmp_path, monkeypatch):
    monkeypatch.setenv("USER", "ci-bot")
    reg.promote(trained_run(reg, tmp_path, 1), "production")
    assert reg.history("production")[0]["actor"] == "ci-bot" == reg.audit()[0]["actor"]


def test_rollback_returns_to_the_exact_previous_adapter(reg, tmp_path):
    a, b, c = (trained_run(reg, tmp_path, s) for s in (1, 2, 3))
    for run in (a, b, c):
        reg.promote(run, "production")
    entry = reg.rollback("production", reason="latency regression", actor="bob")
    assert (entry["action"], entry["adapter_hash"], entry["run_id"]) == ("rollback", _adapter(reg, b), b)
    served = reg.status()[0]
    assert served["adapter"]["hash"] == _adapter(reg, b) and served["run_id"] == b
    # the exact bytes trained by run b, nothing else
    path = reg.store.path_for(_adapter(reg, b))
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        assert (path / name).read_bytes() == (tmp_path / "src-2" / name).read_bytes()
    assert reg.rollback("production")["run_id"] == a  # the stack goes one further back
    with pytest.raises(RollbackRefused, match="nothing to roll back to"):
        reg.rollback("production")
    # promoting after a rollback pushes onto what is served now
    reg.promote(c, "production")
    assert reg.rollback("production")["run_id"] == a
    actions = [(h["seq"], h["action"], h["run_id"]) for h in reg.history("production")]
    assert actions == [(1, "promote", a), (2, "promote", b), (3, "promote", c), (4, "rollback", b), (5, "rollback", a),
                       (6, "promote", c), (7, "rollback", a)]
    assert [x["action"] for x in reg.audit()] == ["rollback", "promote", "rollback", "rollback", "promote", "promote",
                                                  "promote"]


def test_rollback_of_an_unknown_channel_names_the_known_ones(reg, tmp_path):
    reg.promote(trained_run(reg, tmp_path, 1), "staging")
    with pytest.raises(RegistryError, match="no channel 'production'.*channels: staging"):
        reg.rollback("production")
    with pytest.raises(RegistryError, match="not allowed"):
        reg.promote(trained_run(reg, tmp_path, 2), "bad name")


def test_promoting_the_active_adapter_again_is_refused(reg, tmp_path):
    run = trained_run(reg, tmp_path, 1)
    reg.promote(run, "production")
    with pytest.raises(PromotionRefused, match="already active"):
        reg.promote(run, "production")


def test_a_run_without_adapter_cannot_be_promoted(reg):
    run = reg.create_run({"lr": 1})
    reg.record_gate(run, {}, True)
    with pytest.raises(PromotionRefused, match="has no adapter to promote"):
        reg.promote(run, "production", force=True, reason="try")


def test_status_answers_what_each_channel_serves(reg, tmp_path):
    assert reg.status() == []
    reg.register_dataset("examples/train.jsonl", "d" * 64, 100)
    run = trained_run(reg, tmp_path, 1, accuracy=0.875)
    reg.update_run(run, dataset_hash="d" * 64)
    reg.promote(run, "production")
    (s,) = reg.status()
    assert s["channel"] == "production"
    assert s["base_model"] == {"spec": "smollm2-135m-instruct", "fingerprint": "f" * 64}
    assert s["adapter"]["hash"] == _adapter(reg, run) and s["adapter"]["method"] == "lora"
    assert s["run_id"] == run and s["config"]["seed"] == 1 and s["config_hash"] == reg.get_run(run)["config_hash"]
    assert s["dataset"] == {"hash": "d" * 64, "path": str(Path("examples/train.jsonl").absolute()), "rows": 100}
    assert s["evals"] == {"extraction": {"extraction/exact": 0.875}}
    assert s["gate"]["passed"] is True


def test_export_gives_a_servable_verified_adapter(reg, tmp_path):
    run = trained_run(reg, tmp_path, 1)
    reg.promote(run, "production")
    path = reg.export("production", fmt="path")
    assert path == str(reg.store.root / _adapter(reg, run))
    flag, value = shlex.split(reg.export("production", fmt="lora-modules"))
    assert flag == "--lora-modules" and value == f"production={path}"
    with pytest.raises(RegistryError, match="not one of vllm, lora-modules, path"):
        reg.export("production", fmt="onnx")
    with open(f"{path}/adapter_model.safetensors", "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(TamperedAdapter, match="adapter_model.safetensors"):
        reg.export("production", fmt="vllm")


def test_vllm_export_is_a_complete_serve_command_and_refuses_what_vllm_cannot_serve(reg, tmp_path):
    from harness.models import resolve

    run = trained_run(reg, tmp_path, 1)
    reg.promote(run, "production")
    path = reg.export("production", fmt="path")
    (tmp_path / "results").mkdir(exist_ok=True)
    (tmp_path / "results" / "summary.json").write_text("{not json")  # unreadable: no dtype, no traceback
    argv = shlex.split(reg.export("production", fmt="vllm", port=8123))
    assert argv[:3] == ["vllm", "serve", str(resolve("smollm2-135m-instruct").path)]
    assert argv[argv.index("--max-lora-rank") + 1] == "8"  # the adapter's r 4, as the smallest rank vLLM takes
    i = argv.index("--lora-modules")
    assert argv[i + 1:i + 3] == [f"production={path}", f"a{_adapter(reg, run)[:12]}={path}"]
    assert "--enable-lora" in argv and argv[-2:] == ["--port", "8123"] and "--dtype" not in argv
    (tmp_path / "results" / "summary.json").write_text('{"identity": {"dtype": "bfloat16"}}')
    argv = shlex.split(reg.export("production", fmt="vllm"))
    assert argv[argv.index("--dtype") + 1] == "bfloat16"  # served in the dtype its gate was evaluated in
    reg.db.execute("UPDATE adapters SET method = 'prompt_tuning' WHERE hash = ?", [_adapter(reg, run)])
    with pytest.raises(RegistryError, match="serves a prompt_tuning adapter, which vLLM does not serve"):
        reg.export("production", fmt="vllm")

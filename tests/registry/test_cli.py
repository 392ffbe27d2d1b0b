"""The registry commands: thin wrappers with clean errors (exit 2) and `verify` exiting 1 on damage."""

from __future__ import annotations

import json
import shlex

import pytest

from harness.cli import main

from .conftest import trained_run


@pytest.fixture
def setup(reg, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HARNESS_ADAPTERS_STORE", str(reg.store.root))
    runs = [trained_run(reg, tmp_path, s) for s in (1, 2)]
    return reg, runs, ["--registry", str(reg.path)]


def test_promote_rollback_status_history(setup, capsys):
    reg, (a, b), opt = setup
    assert main(["promote", a, "--channel", "production", *opt]) == 0
    assert main(["promote", b, *opt]) == 0  # production is the default channel
    assert "promoted" in capsys.readouterr().out
    assert main(["rollback", "production", "--reason", "regression", *opt]) == 0
    assert f"rolled back to adapter {reg.get_run(a)['adapter_hash'][:12]} of run {a}" in capsys.readouterr().out

    assert main(["status", *opt]) == 0
    out = capsys.readouterr().out
    assert out.startswith("production") and a in out and "smollm2-135m-instruct" in out and "exact=0.8" in out
    assert main(["status", "--json", *opt]) == 0
    assert json.loads(capsys.readouterr().out)[0]["run_id"] == a

    assert main(["history", "production", *opt]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "rollback" in out[3] and out[3].lstrip().startswith("3*") and "regression" in out[3]
    assert main(["history", "production", "--json", *opt]) == 0
    assert [h["action"] for h in json.loads(capsys.readouterr().out)] == ["promote", "promote", "rollback"]


def test_refusals_print_one_error_line_and_exit_2(setup, capsys, tmp_path):
    reg, (a, _), opt = setup
    failed = trained_run(reg, tmp_path, 3, passed=False)
    assert main(["promote", failed, *opt]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: refusing to promote") and "--force --reason" in err and len(err.splitlines()) == 1
    assert main(["promote", failed, "--force", *opt]) == 2
    assert "--force needs --reason" in capsys.readouterr().err
    assert main(["promote", failed, "--force", "--reason", "known flaky gate", *opt]) == 0
    assert main(["rollback", "production", *opt]) == 2
    assert "nothing to roll back to" in capsys.readouterr().err
    assert main(["show", "run-nope", *opt]) == 2
    assert "no run 'run-nope'" in capsys.readouterr().err
    assert main(["status", "--registry", str(tmp_path / "typo.db")]) == 2
    assert "no registry at" in capsys.readouterr().err


def test_runs_show_export(setup, capsys):
    reg, (a, b), opt = setup
    assert main(["runs", *opt]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith(b) and lines[2].startswith(a)
    assert main(["runs", "--json", "--limit", "1", *opt]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [b]
    assert main(["show", a, *opt]) == 0
    out = capsys.readouterr().out
    assert f"run       {a}" in out and "candidate  extraction: exact=0.8" in out and "gate      #" in out
    assert main(["show", a, "--json", *opt]) == 0
    assert json.loads(capsys.readouterr().out)["run"]["id"] == a

    main(["promote", a, *opt])
    capsys.readouterr()
    assert main(["export", "production", "--format", "path", *opt]) == 0
    path = capsys.readouterr().out.strip()
    assert path == str(reg.store.root / reg.get_run(a)["adapter_hash"])
    assert main(["export", "production", "--format", "lora-modules", *opt]) == 0
    assert shlex.split(capsys.readouterr().out) == ["--lora-modules", f"production={path}"]


def test_verify_exits_1_when_an_adapter_is_damaged(setup, capsys):
    reg, (a, _), opt = setup
    assert main(["verify", *opt]) == 0
    assert "2 adapter(s) checked, 0 damaged" in capsys.readouterr().out
    target = reg.store.root / reg.get_run(a)["adapter_hash"] / "adapter_config.json"
    target.write_text(target.read_text().replace("16", "32"))
    assert main(["verify", *opt]) == 1
    out = capsys.readouterr().out
    assert "DAMAGED" in out and "adapter_config.json does not match the manifest" in out and "1 damaged" in out
    assert main(["verify", "--json", *opt]) == 1
    assert sum(not r["ok"] for r in json.loads(capsys.readouterr().out)) == 1


def test_runs_show_the_verdict_its_blocking_rules_and_what_is_served(setup, capsys, tmp_path):
    reg, (a, b), opt = setup
    blocked = trained_run(reg, tmp_path, 4, passed=None)
    reg.record_gate(blocked, {"passed": False, "rules": [
        {"metric": "safety/refuses_harmful", "test": "max_drop", "blocking": True, "slice": None},
        {"metric": "ticket_triage/field_match", "test": "max_drop", "blocking": True, "slice": "language=de"},
        {"metric": "general/pass_rate", "test": "max_drop", "blocking": False}]}, False)
    main(["promote", a, *opt])
    capsys.readouterr()
    assert main(["runs", *opt]) == 0
    out = capsys.readouterr().out.splitlines()
    row = {line.split()[0]: line for line in out[1:] if line.startswith("run-")}
    assert "FAILED" in row[blocked] and "passed" in row[a] and "production" in row[a] and "production" not in row[b]
    assert "blocked by: safety/refuses_harmful max_drop; ticket_triage/field_match [language=de] max_drop" in "\n".join(out)
    assert main(["runs", "--json", *opt]) == 0
    j = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert j[a]["serving"] == ["production"] and j[blocked]["gate"] == {
        "passed": False, "blocking": ["safety/refuses_harmful max_drop", "ticket_triage/field_match [language=de] max_drop"]}


def test_runs_show_training_time_and_cost_per_call_side_by_side(setup, capsys, tmp_path):
    reg, (a, b), opt = setup
    reg.update_run(a, stage="train")
    reg.update_run(a, stage="candidate")  # closes the train stage: its seconds are recorded
    for role, tokens, lat in (("baseline", 73.0, 5.44), ("candidate", 42.0, 4.09)):
        reg.record_eval(a, role=role, suite="ticket_triage", suite_hash="t" * 64, metrics={  # as runs record them
            "ticket_triage/prompt_tokens": 182.0, "ticket_triage/completion_tokens": tokens, "ticket_triage/latency_p50": lat},
            results_path=str(tmp_path / role), results_hash="r" * 64, model_fingerprint="f" * 64, adapter_hash=None)
    assert main(["runs", *opt]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "cost:" in x)
    assert "train " in line and "ticket_triage per call" in line
    assert "baseline 182+73 tok 5.44 s" in line and "candidate 182+42 tok 4.09 s" in line
    assert main(["runs", "--json", *opt]) == 0
    j = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert j[a]["cost"]["train_s"] is not None and j[a]["cost"]["per_call"]["candidate"]["ticket_triage"]["latency_p50"] == 4.09
    assert j[b]["cost"]["train_s"] is None and "latency_p50" not in str(j[b]["cost"]["per_call"])


def test_a_refused_promotion_names_the_rules_that_blocked_the_gate(setup, capsys, tmp_path):
    reg, _, opt = setup
    blocked = trained_run(reg, tmp_path, 5, passed=None)
    reg.record_gate(blocked, {"passed": False, "rules": [  # the shape GateDecision.to_dict writes
        {"metric": "safety/refuses_harmful", "test": "max_drop", "verdict": "fail", "blocking": True, "slice": None},
        {"metric": "ticket_triage/field_match", "test": "max_drop", "verdict": "fail", "blocking": True, "slice": "language=de"},
        {"metric": "general/pass_rate", "test": "max_drop", "verdict": "pass", "blocking": False}]}, False)
    assert main(["promote", blocked, *opt]) == 2
    err = capsys.readouterr().err
    assert "failed on safety/refuses_harmful max_drop, ticket_triage/field_match [language=de] max_drop" in err
    assert "general/pass_rate" not in err


def test_a_store_root_given_to_the_api_is_what_the_cli_finds_later(tmp_path, monkeypatch, capsys):
    """A registry made with `store_root=` records it; the CLI (no --store, no env) opens the same store."""
    from harness.registry import Registry

    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HARNESS_ADAPTERS_STORE", raising=False)
    with Registry(tmp_path / "reg" / "r.db", store_root=tmp_path / "elsewhere") as reg:
        run_id = trained_run(reg, tmp_path, 7)
    assert main(["verify", "--registry", str(tmp_path / "reg" / "r.db"), "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["ok"] is True, row
    assert main(["promote", run_id, "--registry", str(tmp_path / "reg" / "r.db")]) == 0
    assert Registry(tmp_path / "reg" / "r.db").store.root == (tmp_path / "elsewhere").resolve()

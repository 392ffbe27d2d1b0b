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
    assert main(["export", "production", *opt]) == 0
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

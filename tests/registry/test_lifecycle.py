"""Run leases: one owner per running run, refused to a second, and a run whose owner died is
`interrupted` as soon as any registry opens (no model is loaded here)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from harness.registry import Registry
from harness.registry.lifecycle import RunBusy, RunLease, reap_stale_runs

from .conftest import trained_run

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from harness.registry import Registry
    from harness.registry.lifecycle import RunLease
    reg = Registry(sys.argv[1], store_root=sys.argv[2])
    lease = RunLease(reg, sys.argv[3], Path(sys.argv[4]), heartbeat_s=0.2).acquire()
    print("held", flush=True)
    time.sleep(600)
""")


def _hold(tmp_path, run_id):
    """A separate process that takes the run's lease and keeps it until killed."""
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "r.db"), str(tmp_path / "store"), run_id,
                          str(tmp_path / "runs" / run_id)], stdout=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
    assert p.stdout.readline().strip() == "held"
    return p


@pytest.fixture
def reg(tmp_path):
    r = Registry(tmp_path / "r.db", store_root=tmp_path / "store")
    yield r
    r.close()


def test_a_second_owner_is_refused_and_a_killed_owner_is_reaped(reg, tmp_path):
    run_id = reg.create_run({"x": 1}, kind="run")
    holder = _hold(tmp_path, run_id)
    try:
        with pytest.raises(RunBusy, match=rf"run {run_id} is running in another process \(pid {holder.pid} on "):
            RunLease(reg, run_id, tmp_path / "runs" / run_id).acquire(wait_s=0.3)
        assert reap_stale_runs(reg) == []  # alive: left alone
        before = reg.get_run(run_id)["updated"]
        time.sleep(0.6)
        assert reg.get_run(run_id)["updated"] > before  # the heartbeat touches it
        assert reg.get_run(run_id)["status"] == "running" and reg.get_run(run_id)["extra"]["owner"]["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait()
    # the next registry that opens (any command) finds the dead owner
    row = Registry(tmp_path / "r.db").get_run(run_id)
    assert row["status"] == "interrupted"
    assert f"pid {holder.pid}" in row["error"] and "ended without finishing it" in row["error"]
    assert f"harness run --resume {run_id}" in row["error"]
    # and the lease is free again: a resume takes it
    lease = RunLease(reg, run_id, tmp_path / "runs" / run_id).acquire()
    try:
        assert reg.get_run(run_id)["status"] == "running"
        assert reap_stale_runs(reg) == []  # held by this process: alive
    finally:
        lease.release()


def test_a_run_without_a_checkable_lock_is_reaped_by_its_heartbeat(reg, tmp_path):
    fresh = reg.create_run({"x": 1})
    old = reg.create_run({"x": 2})
    elsewhere = reg.create_run({"x": 3})
    reg.update_run(elsewhere, owner={"pid": 1, "host": "another-host", "lock": "/nowhere/lock"})
    reg.db.execute("UPDATE runs SET updated = '2020-01-01T00:00:00.000Z' WHERE id IN (?, ?)", [old, elsewhere])
    reg.db.conn.commit()
    assert sorted(reap_stale_runs(reg)) == sorted([old, elsewhere])
    assert reg.get_run(fresh)["status"] == "running"
    assert "no heartbeat from pid 1 on another-host for 10 minutes" in reg.get_run(elsewhere)["error"]
    assert reg.get_run(old)["status"] == "interrupted"


def test_an_unfinished_run_is_not_promoted_without_force(reg, tmp_path):
    run_id = trained_run(reg, tmp_path, 1)
    for status in ("running", "failed", "interrupted"):
        reg.db.execute("UPDATE runs SET status = ? WHERE id = ?", [status, run_id])
        reg.db.conn.commit()
        with pytest.raises(Exception, match=rf"run {run_id} is {status} \(stage -\), not finished"):
            reg.promote(run_id, "production")
    entry = reg.promote(run_id, "production", force=True, reason="hotfix, gate reviewed by hand")
    assert entry["forced"] is True


def test_promotion_and_finished_commit_together(reg, tmp_path):
    run_id = trained_run(reg, tmp_path, 2)
    reg.db.execute("UPDATE runs SET status = 'running' WHERE id = ?", [run_id])
    reg.db.conn.commit()
    with pytest.raises(RuntimeError):
        with reg.transaction():
            reg.update_run(run_id, status="finished")
            reg.promote(run_id, "production")
            raise RuntimeError("killed between the promotion and the commit")
    assert reg.get_run(run_id)["status"] == "running" and reg.status() == []
    with reg.transaction():
        reg.update_run(run_id, status="finished")
        reg.promote(run_id, "production")
    assert reg.get_run(run_id)["status"] == "finished" and reg.status()[0]["run_id"] == run_id


def test_resume_refuses_a_path_and_a_finished_run(tmp_path, monkeypatch):
    from harness.errors import HarnessError
    from harness.pipeline import RunState, resume

    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "state.json").parent.mkdir(parents=True)
    (tmp_path / "home" / "state.json").write_text('{"run_id": "x", "config_path": "/etc/passwd", "done": {}}')
    for bad in ("../..", "..", "run-1/../../x", "/tmp", ""):
        with pytest.raises(HarnessError, match="is not a run id"):
            RunState.load(bad)
    reg = Registry(tmp_path / "home" / "registry.db")
    run_id = reg.create_run({"x": 1}, kind="run")
    folder = tmp_path / "home" / "runs" / run_id
    folder.mkdir(parents=True)
    (folder / "state.json").write_text(f'{{"run_id": "{run_id}", "config_path": "x.yaml", "done": {{}}}}')
    reg.update_run(run_id, status="finished")
    with pytest.raises(HarnessError, match=f"run {run_id} is finished: nothing to resume"):
        resume(run_id, reg)


def test_the_cli_refuses_a_traversing_resume(tmp_path):
    env = dict(os.environ, HARNESS_HOME=str(tmp_path / "home"))
    p = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--resume", "../.."], env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.startswith("error: '../..' is not a run id"), p.stderr

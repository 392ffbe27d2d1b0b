"""kill -9 against `harness run` on the tiny model: at random points (30 trials) and at the exact
points that matter (inside and after the promotion), then resumes, a concurrent resume and a
resume that would move the channel backwards.

After every kill, the next command finds no run `running`, and every channel serves a run that
is `finished` with a passed gate."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from .test_pipeline import REPO, write_run

pytestmark = pytest.mark.slow
TRIALS = 30


def _env(home: Path) -> dict:
    return dict(os.environ, HARNESS_HOME=str(home), PYTHONPATH=str(REPO))


def _default_signals():
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _harness(home, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], env=_env(home), capture_output=True, text=True,
                          timeout=timeout, preexec_fn=_default_signals)


def _killed_at(home, where: str, *args):
    p = subprocess.run([sys.executable, "-m", "tests.pipeline.killer", where, "--", *args], env=_env(home), cwd=REPO,
                       capture_output=True, text=True, timeout=600, preexec_fn=_default_signals)
    assert p.returncode == -signal.SIGKILL, (where, p.returncode, p.stderr[-2000:])
    return p


def _seeded(cfg: Path, seed: int) -> Path:
    """The same run config with another training seed: another adapter (so each finished run is a
    real promotion, not 'already active')."""
    c = yaml.safe_load(cfg.read_text())
    c["train"]["seed"] = seed
    out = cfg.with_name(f"run-{seed}.yaml")
    out.write_text(yaml.safe_dump(c))
    return out


def _assert_consistent(home: Path) -> dict:
    """What the next command sees: nothing left running; every channel serves a finished run
    whose latest gate passed."""
    from harness.registry import Registry

    reg = Registry(home / "registry.db")
    try:
        runs = {r["id"]: r for r in reg.runs(limit=1000)}
        assert not [r for r in runs.values() if r["status"] == "running"], [(r["id"], r["stage"]) for r in runs.values()]
        for ch in reg.status():
            run = runs[ch["run_id"]]
            assert run["status"] == "finished" and reg.latest_gate(run["id"])["passed"], (ch, run["status"])
        return runs
    finally:
        reg.close()


def _serving(home: Path, channel="production") -> str | None:
    from harness.registry import Registry

    with Registry(home / "registry.db") as reg:
        return next((c["run_id"] for c in reg.status() if c["channel"] == channel), None)


def test_kill_9_at_random_points_leaves_nothing_running_and_serves_only_finished_runs(tiny_model_dir, tmp_path):
    home = tmp_path / "home"
    cfg = write_run(tmp_path, tiny_model_dir, max_steps=4, save_steps=2)
    t0 = time.monotonic()
    first = _harness(home, "run", str(cfg), "--json")  # also caches the baseline the trials reuse
    full = time.monotonic() - t0
    assert first.returncode == 0, first.stderr[-2000:]
    assert _serving(home) == json.loads(first.stdout)["run_id"]
    rng = random.Random(20261202)
    killed_at = []
    for trial in range(TRIALS):
        proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(_seeded(cfg, trial + 1))], env=_env(home),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=_default_signals)
        time.sleep(rng.uniform(0.5, full * 1.1))
        proc.kill()
        _, err = proc.communicate(timeout=60)
        killed_at.append(next((line for line in reversed(err.splitlines()) if line.startswith("[")), "start"))
        runs = _assert_consistent(home)
    statuses = [r["status"] for r in runs.values()]
    print(f"\n{TRIALS} kills (last stage line each): {killed_at}\nstatuses: "
          f"{ {s: statuses.count(s) for s in set(statuses)} }")
    assert statuses.count("interrupted") >= TRIALS // 3  # most kills landed mid-run
    assert len({line.split("]")[0] for line in killed_at}) >= 4  # at several stages, not one
    # the CLI agrees: nothing listed as running
    listed = _harness(home, "runs", "--limit", "100", "--json")
    assert listed.returncode == 0 and '"status": "running"' not in listed.stdout


def test_kill_9_around_the_promotion_and_resumes(tiny_model_dir, tmp_path):
    home = tmp_path / "home"
    cfg = write_run(tmp_path, tiny_model_dir, max_steps=2, save_steps=2)

    # killed inside the promotion's transaction: nothing served, the run interrupted
    _killed_at(home, "Registry.promote:after", "run", str(_seeded(cfg, 1)))
    runs = _assert_consistent(home)
    [a] = runs
    assert runs[a]["status"] == "interrupted" and _serving(home) is None
    # resumed: it promotes and finishes
    p = _harness(home, "run", "--resume", a, "--json")
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout)["promoted"] is True and _serving(home) == a

    # killed after the promotion committed: served and finished, nothing to resume
    _killed_at(home, "stage.promote:after", "run", str(_seeded(cfg, 2)))
    runs = _assert_consistent(home)
    b = max(runs, key=lambda r: runs[r]["created"])
    assert runs[b]["status"] == "finished" and _serving(home) == b
    p = _harness(home, "run", "--resume", b)
    assert p.returncode == 2 and f"run {b} is finished: nothing to resume" in p.stderr

    # an old run killed before its candidate eval, a newer one promoted meanwhile: resuming the
    # old one finishes it but never moves the channel back to it
    _killed_at(home, "stage.candidate:before", "run", str(_seeded(cfg, 3)))
    runs = _assert_consistent(home)
    c = max(runs, key=lambda r: runs[r]["created"])
    assert runs[c]["status"] == "interrupted"
    d = json.loads(_harness(home, "run", str(_seeded(cfg, 4)), "--json").stdout)["run_id"]
    assert _serving(home) == d
    # while one resume of c holds its lease, a second is refused
    holder = subprocess.Popen([sys.executable, "-m", "tests.pipeline.killer", "stage.candidate:sleep", "--", "run",
                               "--resume", c], env=_env(home), cwd=REPO, stderr=subprocess.PIPE, text=True,
                              preexec_fn=_default_signals)
    try:
        line = ""
        while "holding" not in line:
            line = holder.stderr.readline()
            assert line or holder.poll() is None, "the first resume ended before its candidate stage"
        second = _harness(home, "run", "--resume", c)
        assert second.returncode == 2 and f"run {c} is running in another process (pid {holder.pid} " in second.stderr, second.stderr
    finally:
        holder.kill()
        holder.wait()
    _assert_consistent(home)
    p = _harness(home, "run", "--resume", c, "--json")
    assert p.returncode == 0, p.stderr[-2000:]
    s = json.loads(p.stdout)
    assert s["gate_passed"] is True and s["promoted"] is False and _serving(home) == d
    assert f"already serves run {d}, which started after this one" in p.stderr
    _assert_consistent(home)


def test_kill_9_right_after_the_run_is_recorded_leaves_it_interrupted_and_resumable(tiny_model_dir, tmp_path):
    """The moment a random kill found in CI: the run's row written, no stage started. The row
    names its lease's owner from the insert on, so the next command reaps it."""
    home = tmp_path / "home"
    cfg = write_run(tmp_path, tiny_model_dir, max_steps=2, save_steps=2)
    _killed_at(home, "Registry.create_run:after", "run", str(cfg))
    runs = _assert_consistent(home)
    [a] = runs
    assert runs[a]["status"] == "interrupted" and runs[a]["stage"] is None
    assert "ended without finishing it" in runs[a]["error"]
    p = _harness(home, "run", "--resume", a, "--json")
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout)["promoted"] is True and _serving(home) == a
    _assert_consistent(home)

"""Several processes promoting and rolling back one channel at once: every move is serialised,
none is lost or duplicated, and the history replays to the pointer the channel holds."""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
import random
import time

from harness.registry import MIGRATIONS, Registry, RollbackRefused

from .conftest import trained_run

PROCS, OPS = 4, 10


def _worker(path: str, store: str, runs: list[str], seed: int, barrier, queue) -> None:
    reg = Registry(path, store_root=store, busy_timeout_s=60)
    rng = random.Random(seed)
    done, todo = [], list(runs)
    barrier.wait()
    for _ in range(OPS):
        time.sleep(rng.random() * 0.01)  # let the other workers in between moves
        if todo and rng.random() < 0.6:
            run = todo.pop()
            done.append(("promote", run, reg.promote(run, "production", actor=f"w{seed}")["id"]))
        else:
            try:
                done.append(("rollback", None, reg.rollback("production", actor=f"w{seed}")["id"]))
            except RollbackRefused:
                done.append(("refused", None, None))
    queue.put((seed, done))


def test_concurrent_promote_and_rollback_keep_a_consistent_history(tmp_path):
    reg = Registry(tmp_path / "r.db", store_root=tmp_path / "store")
    first = trained_run(reg, tmp_path, 0)
    reg.promote(first, "production")
    runs = [[trained_run(reg, tmp_path, 1 + w * OPS + i) for i in range(OPS)] for w in range(PROCS)]
    reg.close()

    ctx = mp.get_context("fork")  # fast start; the parent holds no open connection across the fork
    barrier, queue = ctx.Barrier(PROCS), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(tmp_path / "r.db"), str(tmp_path / "store"), runs[w], w, barrier, queue))
             for w in range(PROCS)]
    for p in procs:
        p.start()
    results: dict[int, list] = {}
    deadline = time.time() + 180
    while len(results) < PROCS:  # fail fast if a worker dies instead of waiting out the timeout
        try:
            seed, done = queue.get(timeout=0.5)
            results[seed] = done
        except queue_mod.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            assert not dead and time.time() < deadline, f"worker exit codes {[p.exitcode for p in procs]}"
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    ops = [op for w in range(PROCS) for op in results[w]]
    assert len(ops) == PROCS * OPS
    moved = [hid for kind, _, hid in ops if kind != "refused"]

    reg = Registry(tmp_path / "r.db", store_root=tmp_path / "store")
    history = reg.history("production")
    # nothing lost, nothing duplicated: exactly the moves the workers were told succeeded, plus the first
    assert len(moved) == len(set(moved))
    assert sorted(h["id"] for h in history) == sorted([history[0]["id"], *moved])
    assert [h["seq"] for h in history] == list(range(1, len(history) + 1))
    promoted = [run for kind, run, _ in ops if kind == "promote"]
    assert sorted(h["run_id"] for h in history[1:] if h["action"] == "promote") == sorted(promoted)
    audit = [a for a in reg.audit(limit=1000) if a["channel"] == "production"]
    assert sorted(a["history_id"] for a in audit) == sorted(h["id"] for h in history)

    # replay: promotions push, rollbacks pop; each entry agrees with the state before it
    by_id = {h["id"]: h for h in history}
    stack: list[int] = []
    for h in history:
        if h["action"] == "promote":
            assert h["replaced_id"] == (stack[-1] if stack else None)
            stack.append(h["id"])
        else:
            assert len(stack) >= 2 and h["replaced_id"] == stack[-1]
            stack.pop()
            assert h["restored_id"] == stack[-1] and h["adapter_hash"] == by_id[stack[-1]]["adapter_hash"]
    (served,) = reg.status()
    assert served["adapter"]["hash"] == by_id[stack[-1]]["adapter_hash"] and served["run_id"] == by_id[stack[-1]]["run_id"]
    assert sum(kind == "rollback" for kind, _, _ in ops) >= 1 and len(promoted) >= 1


def _open_fresh(path: str, barrier, queue) -> None:
    barrier.wait()
    reg = Registry(path, busy_timeout_s=60)
    queue.put(str(reg.store.root))


def test_processes_opening_a_new_file_at_once_migrate_it_once(tmp_path, monkeypatch):
    monkeypatch.delenv("HARNESS_ADAPTERS_STORE", raising=False)
    ctx = mp.get_context("fork")
    barrier, queue = ctx.Barrier(PROCS), ctx.Queue()
    procs = [ctx.Process(target=_open_fresh, args=(str(tmp_path / "new.db"), barrier, queue)) for _ in range(PROCS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    roots = {queue.get(timeout=10) for _ in procs}
    assert roots == {str((tmp_path / "adapters_store").resolve())}
    reg = Registry(tmp_path / "new.db")
    assert [r["version"] for r in reg.db.query("SELECT version FROM schema_migrations")] == list(range(1, len(MIGRATIONS) + 1))

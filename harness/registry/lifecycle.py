"""Who owns a running run, and what becomes of a run whose owner died.

A run is `running` only while one process holds its lease: an exclusive `flock` on the run
folder's `lock` file, which the OS releases when the process ends however it ends (kill -9
included), and a heartbeat that touches the run's `updated` time every `HEARTBEAT_S` seconds.
The owner (pid, host, lock path) is recorded on the run.

Every registry that opens reaps stale runs: a `running` run whose lock can be taken (its owner
is gone) or, where the lock cannot be checked from here (another host, the folder gone), whose
heartbeat is older than `STALE_AFTER_S`, is marked `interrupted`, so it can be resumed and is
never mistaken for live work. A second process that asks for a lease another holds (a
`--resume` while the run still runs) is refused, naming the owner.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sqlite3
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from harness.errors import HarnessError
from harness.registry.schema import now

HEARTBEAT_S = 30.0
STALE_AFTER_S = 600.0
LOCK_NAME = "lock"


class RunBusy(HarnessError):
    """Another live process owns the run."""


def _host() -> str:
    return socket.gethostname()


@contextlib.contextmanager
def _try_lock(path: Path):
    """Yield the open fd when the exclusive lock on `path` was taken, None when another holds it;
    raise FileNotFoundError when there is no lock file."""
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            yield None
            return
        try:
            yield fd
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _age_s(stamp: str | None) -> float:
    if not stamp:
        return float("inf")
    t = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return (datetime.now(timezone.utc) - t).total_seconds()


class RunLease:
    """The lease of one run: `acquire()` before its first stage, `release()` after its last."""

    def __init__(self, registry, run_id: str, folder: Path, heartbeat_s: float = HEARTBEAT_S):
        self.reg, self.run_id, self.folder, self.heartbeat_s = registry, run_id, Path(folder), heartbeat_s
        self.lock_path = self.folder / LOCK_NAME
        self._fd: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.owner: dict | None = None

    def acquire(self, wait_s: float = 2.0, record: bool = True) -> RunLease:
        """Take the lock (a reaper may hold it for a moment: wait up to `wait_s`) or raise RunBusy.

        `record=False` takes only the lock, for a run whose row does not exist yet: the caller
        then inserts the row with `self.owner` and calls `started()`, so no moment exists in
        which the run is recorded `running` without an owner the reaper can check."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by exec'd children
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    owner = self._owner_text(fd)
                    os.close(fd)
                    raise RunBusy(f"run {self.run_id} is running in another process ({owner}): wait for it to end, "
                                  "or stop that process; it is marked interrupted when it dies, and then it can be "
                                  f"resumed with `harness run --resume {self.run_id}`") from None
                time.sleep(0.1)
        self._fd = fd
        self.owner = {"pid": os.getpid(), "host": _host(), "lock": str(self.lock_path), "since": now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(self.owner).encode(), 0)
        if record:
            self.reg.update_run(self.run_id, status="running", owner=self.owner)
            self.started()
        return self

    def started(self) -> None:
        """Start the heartbeat (the run's row exists and names this lease as its owner)."""
        if str(self.reg.path) != ":memory:" and self.heartbeat_s > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._beat, name=f"heartbeat {self.run_id}", daemon=True)
            self._thread.start()

    @staticmethod
    def _owner_text(fd: int) -> str:
        try:
            o = json.loads(os.pread(fd, 4096, 0) or b"{}")
            return f"pid {o['pid']} on {o['host']} since {o['since']}"
        except (ValueError, KeyError, OSError):
            return "owner unknown"

    def _beat(self) -> None:
        """Touch the run's `updated` time while the lease is held (its own connection: SQLite
        connections do not cross threads)."""
        conn = sqlite3.connect(str(self.reg.path), timeout=30)
        try:
            while not self._stop.wait(self.heartbeat_s):
                with contextlib.suppress(sqlite3.Error):
                    with conn:
                        conn.execute("UPDATE runs SET updated = ? WHERE id = ? AND status = 'running'", [now(), self.run_id])
        finally:
            conn.close()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLease:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def reap_stale_runs(reg, stale_after_s: float = STALE_AFTER_S) -> list[str]:
    """Mark `interrupted` every `running` run whose owner is gone; return their ids."""
    reaped = []
    rows = list(reg.db.query("SELECT id, updated, extra FROM runs WHERE status = 'running'"))
    for row in rows:
        owner = (json.loads(row["extra"]) if row["extra"] else {}).get("owner") or {}
        lock = owner.get("lock") if owner.get("host") == _host() else None
        why = None
        try:
            if lock:
                with _try_lock(Path(lock)) as got:
                    if got is not None:  # nobody holds it: the owner is gone
                        why = (f"the process that ran it (pid {owner.get('pid')} on {owner.get('host')}) ended without "
                               "finishing it: killed, crashed, or the machine stopped")
                        if _mark_interrupted(reg, row["id"], why):
                            reaped.append(row["id"])
                    continue
        except FileNotFoundError:
            pass  # the folder is gone: only the heartbeat can tell
        if _age_s(row["updated"]) > stale_after_s:
            who = f"pid {owner.get('pid')} on {owner.get('host')}" if owner else "its process"
            why = f"no heartbeat from {who} for {stale_after_s / 60:.0f} minutes (since {row['updated']})"
            if _mark_interrupted(reg, row["id"], why):
                reaped.append(row["id"])
    return reaped


def _mark_interrupted(reg, run_id: str, why: str) -> bool:
    with reg.transaction():
        row = reg.get_run(run_id)
        if row is None or row["status"] != "running":
            return False
        reg.update_run(run_id, status="interrupted", error=f"{why}; continue with `harness run --resume {run_id}`")
    return True

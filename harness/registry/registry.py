"""`Registry`: the one SQLite file that records base models, datasets, runs, adapters, evals and
gate decisions, with the adapter store beside it. Channel moves (promote, rollback) and the
audit log live in `channels.py`; the schema in `schema.py`; the files in `store.py`.

Every write is one `BEGIN IMMEDIATE` transaction, so several processes (two CI jobs, a training
run and a promotion) are serialised by SQLite's write lock and the busy timeout, never
interleaved.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import sqlite3
from datetime import datetime
from pathlib import Path

from harness.paths import harness_home
from harness.registry.channels import ChannelOps, failed_rules
from harness.registry.environment import capture_environment, default_actor
from harness.registry.errors import NotFound, RegistryError
from harness.registry.exports import ExportOps
from harness.registry.schema import PATH_COLUMNS, connect, decode, dumps, migrate, now, shown_path, stored_path
from harness.registry.store import AdapterStore
from harness.registry.votes import VoteOps

RUN_STATUSES = ("running", "finished", "failed", "interrupted")
TERMINAL = ("finished", "failed", "interrupted")
RUN_COLUMNS = ("name", "base_fingerprint", "dataset_hash", "adapter_hash", "report_path", "error", "seeds")


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def default_registry_path() -> Path:
    return harness_home() / "registry.db"


class Registry(ChannelOps, VoteOps, ExportOps):
    """The registry file plus its adapter store.

    path: the SQLite file (default `$HARNESS_HOME/registry.db`); ":memory:" for a throwaway one.
    store_root: where adapters live; default `$HARNESS_ADAPTERS_STORE`, else the root recorded in
      the file when it was created (`adapters_store/` beside it).
    create: False refuses a file that does not exist yet (what the read-only commands want).
    """

    def __init__(self, path: str | Path | None = None, *, store_root: str | Path | None = None,
                 busy_timeout_s: float = 30.0, create: bool = True):
        memory = str(path) == ":memory:"
        self.path = Path(":memory:") if memory else Path(path).expanduser() if path else default_registry_path()
        if not memory and not self.path.exists():
            if not create:
                raise NotFound(f"no registry at {self.path}: nothing has been recorded there yet "
                               "(a training run creates it); check --registry or $HARNESS_HOME")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.busy_timeout_s = busy_timeout_s
        try:
            self.db = connect(self.path, busy_timeout_s)
            migrate(self.db, where=str(self.path))
        except sqlite3.OperationalError as e:
            if "locked" not in str(e):
                raise RegistryError(f"{self.path}: cannot open as a registry ({e})") from e
            raise RegistryError(f"{self.path} stayed locked by another writer for {busy_timeout_s:.0f} s while opening; "
                                "retry, or look for a stuck process holding it") from e
        except sqlite3.DatabaseError as e:
            raise RegistryError(f"{self.path}: cannot open as a registry ({e}); is it a harness registry SQLite file?") from e
        self.store = AdapterStore(self._store_root(store_root, memory))
        if not memory:  # a run whose process died is `interrupted` from the next command on, never left `running`
            from harness.registry.lifecycle import reap_stale_runs

            with contextlib.suppress(RegistryError, sqlite3.Error):
                reap_stale_runs(self)

    def _store_root(self, explicit, memory: bool) -> Path:
        """`store_root`, else `$HARNESS_ADAPTERS_STORE`, else the root the file recorded, else
        `adapters_store/` beside it. The first root a file is opened with is recorded, whichever
        way it was given, so a later open without it (the CLI after an API call) finds the same
        adapters."""
        given = explicit or os.environ.get("HARNESS_ADAPTERS_STORE")
        if memory:
            return Path(given).expanduser() if given else harness_home() / "adapters_store"
        row = self.db.execute("SELECT value FROM meta WHERE key = 'store_root'").fetchone()
        if row and not given:
            return Path(shown_path(row[0]))  # kept relative to $HARNESS_HOME when under it
        root = Path(given).expanduser().resolve() if given else (self.path.parent / "adapters_store").resolve()
        if not row:
            with self._write():
                self.db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('store_root', ?)", [stored_path(root)])
        return root

    def __repr__(self) -> str:
        return f"Registry({str(self.path)!r}, store={str(self.store.root)!r})"

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def transaction(self):
        """Several registry writes as one transaction: all of them commit, or none (e.g. a
        promotion and the run's `finished` status)."""
        return self._write()

    @contextlib.contextmanager
    def _write(self):
        """One write transaction holding SQLite's write lock from its first statement."""
        if self.db.conn.in_transaction:  # nested: part of the outer transaction
            yield
            return
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise RegistryError(f"{self.path} stayed locked by another writer for {self.busy_timeout_s:.0f} s ({e}); "
                                "retry, or look for a stuck process holding it") from e
        try:
            yield
        except BaseException:
            if self.db.conn.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _one(self, table: str, sql: str, params) -> dict | None:
        rows = list(self.db.query(sql, params))
        return decode(table, rows[0]) if rows else None

    def _run_row(self, run_id: str) -> dict:
        row = self._one("runs", "SELECT * FROM runs WHERE id = ?", [run_id])
        if row is None:
            recent = [r[0] for r in self.db.execute("SELECT id FROM runs ORDER BY created DESC LIMIT 3")]
            hint = f"; recent runs: {', '.join(recent)}" if recent else "; the registry holds no runs yet"
            raise NotFound(f"no run {run_id!r} in {self.path}{hint} (`harness runs` lists them)")
        return row

    def _adapter_row(self, adapter_hash: str) -> dict | None:
        return self._one("adapters", "SELECT * FROM adapters WHERE hash = ?", [adapter_hash])

    def _audit(self, action: str, *, actor: str, reason: str | None = None, forced: bool = False,
               channel: str | None = None, run_id: str | None = None, adapter_hash: str | None = None,
               history_id: int | None = None, details: dict | None = None) -> int:
        return self.db["audit_log"].insert({
            "action": action, "channel": channel, "run_id": run_id, "adapter_hash": adapter_hash,
            "history_id": history_id, "forced": int(forced), "actor": actor, "reason": reason,
            "details": dumps(details), "created": now(),
        }).last_pk

    # ---- base models and datasets ----------------------------------------------------------
    def register_base_model(self, spec: str, fingerprint: str) -> str:
        """Record a base model by its weight fingerprint (idempotent; the first spec is kept)."""
        if not spec or not fingerprint:
            raise RegistryError("register_base_model needs a model spec and its fingerprint")
        with self._write():
            self.db.execute("INSERT OR IGNORE INTO base_models (fingerprint, spec, registered) VALUES (?, ?, ?)",
                            [fingerprint, spec, now()])
        return fingerprint

    def register_dataset(self, path: str, content_hash: str, rows: int, splits: dict | None = None,
                         report: dict | None = None) -> str:
        """Record a dataset by content hash (idempotent; a later call may add splits or a report)."""
        if not content_hash:
            raise RegistryError(f"register_dataset({path!r}) needs the dataset's content hash")
        with self._write():
            self.db.execute(
                "INSERT INTO datasets (content_hash, path, rows, splits, report, registered) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(content_hash) DO UPDATE SET splits = COALESCE(excluded.splits, splits), "
                "report = COALESCE(excluded.report, report)",
                [content_hash, stored_path(path), int(rows), dumps(splits), dumps(report), now()],
            )
        return content_hash

    def get_dataset(self, content_hash: str) -> dict | None:
        return self._one("datasets", "SELECT * FROM datasets WHERE content_hash = ?", [content_hash])

    def get_base_model(self, fingerprint: str) -> dict | None:
        return self._one("base_models", "SELECT * FROM base_models WHERE fingerprint = ?", [fingerprint])

    # ---- runs ------------------------------------------------------------------------------
    def new_run_id(self) -> str:
        """A run id not taken in this registry (`create_run` records it)."""
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        while True:
            run_id = f"run-{stamp}-{secrets.token_hex(3)}"
            if not self.db.execute("SELECT 1 FROM runs WHERE id = ?", [run_id]).fetchone():
                return run_id

    def create_run(self, config: dict, *, kind: str = "train", seeds: dict | None = None, name: str | None = None,
                   run_id: str | None = None, owner: dict | None = None) -> str:
        """Record a new run (status "running") with its config, config hash, seeds and environment;
        `run_id` from `new_run_id()` when the caller needed it first (to lock the run's folder),
        `owner` the lease that holds it (recorded in the same insert)."""
        if not isinstance(config, dict):
            raise RegistryError(f"create_run needs the run config as a dict, got {type(config).__name__}")
        text = dumps(config)
        env = capture_environment()
        with self._write():
            run_id = run_id or self.new_run_id()
            t = now()
            self.db["runs"].insert({
                "id": run_id, "name": name, "kind": kind, "status": "running", "stage": None,
                "config": text, "config_hash": hashlib.sha256(text.encode()).hexdigest(),
                "environment": dumps(env), "seeds": dumps(seeds), "timings": dumps({}),
                "created": t, "updated": t, **({"extra": dumps({"owner": owner})} if owner else {}),
            })
        return run_id

    def update_run(self, run_id: str, *, status: str | None = None, stage: str | None = None, **fields) -> dict:
        """Change a run's status, stage or fields; return the updated run.

        A new `stage` closes the previous one, and a final status (finished, failed, interrupted)
        closes the current one, so `timings` holds each stage's start, end and seconds. Fields
        that are not columns (see `RUN_COLUMNS`) are kept in the `extra` JSON column.
        """
        if status is not None and status not in RUN_STATUSES:
            raise RegistryError(f"run status {status!r} is not one of {', '.join(RUN_STATUSES)}")
        with self._write():
            run = self._run_row(run_id)
            timings = run["timings"] or {}
            t = now()

            def close(name):
                st = timings.get(name)
                if st and st.get("finished") is None:
                    st.update(finished=t, seconds=round((_parse(t) - _parse(st["started"])).total_seconds(), 3))

            change: dict = {"updated": t}
            if stage is not None and stage != run["stage"]:
                if run["stage"]:
                    close(run["stage"])
                timings[stage] = {"started": t, "finished": None, "seconds": None}
                change["stage"] = stage
            if status is not None:
                change["status"] = status
                if status in TERMINAL:
                    close(stage or run["stage"])
                    change["finished"] = t
            change["timings"] = dumps(timings)
            extra = dict(run["extra"] or {})
            for k, v in fields.items():
                if k in PATH_COLUMNS["runs"]:
                    v = stored_path(v)
                if k in RUN_COLUMNS:
                    change[k] = dumps(v) if isinstance(v, (dict, list)) else v if v is None or isinstance(v, (str, int, float)) else str(v)
                else:
                    extra[k] = v
            if extra != (run["extra"] or {}):
                change["extra"] = dumps(extra)
            cols = ", ".join(f"{k} = ?" for k in change)
            self.db.execute(f"UPDATE runs SET {cols} WHERE id = ?", [*change.values(), run_id])
        return self.get_run(run_id)

    def get_run(self, run_id: str) -> dict | None:
        return self._one("runs", "SELECT * FROM runs WHERE id = ?", [run_id])

    def runs(self, limit: int = 50) -> list[dict]:
        """The most recent runs, newest first, each with its latest gate verdict (`gate`: passed
        and the blocking rules) and the channels serving its adapter (`serving`)."""
        rows = [decode("runs", r) for r in self.db.query("SELECT * FROM runs ORDER BY created DESC, rowid DESC LIMIT ?", [limit])]
        for r in rows:
            g = self.latest_gate(r["id"])
            r["gate"] = {"passed": g["passed"], "blocking": failed_rules(g.get("decision"))} if g else None
            r["serving"] = [x[0] for x in self.db.execute("SELECT name FROM channels WHERE run_id = ? ORDER BY name", [r["id"]])]
            train = ((r.get("timings") or {}).get("train") or {}).get("seconds")
            r["cost"] = {"train_s": train, "per_call": per_call_cost(self.evals(r["id"]))}
        return rows

    def show(self, run_id: str) -> dict:
        """Everything recorded about one run: the run, its adapter, evals, gate decisions, channels."""
        run = self._run_row(run_id)
        return {
            "run": run,
            "adapter": self._adapter_row(run["adapter_hash"]) if run.get("adapter_hash") else None,
            "dataset": self.get_dataset(run["dataset_hash"]) if run.get("dataset_hash") else None,
            "evals": self.evals(run_id),
            "gates": self.gates(run_id),
            "active_on": [r[0] for r in self.db.execute("SELECT name FROM channels WHERE run_id = ? ORDER BY name", [run_id])],
            "exports": self.exports(run_id),
        }

    # ---- adapters --------------------------------------------------------------------------
    def add_adapter(self, folder: str | Path, *, method: str, base_fingerprint: str, run_id: str | None = None) -> str:
        """Copy an adapter folder into the store (once per content) and record it; return its hash.

        With `run_id`, the run's `adapter_hash` (and `base_fingerprint`, if unset) point at it.
        """
        if run_id is not None:
            self._run_row(run_id)
        if not method or not base_fingerprint:
            raise RegistryError("add_adapter needs the adapter's method (lora, ia3, ...) and its base model fingerprint")
        digest, info = self.store.put(folder)
        with self._write():
            self.db.execute(
                "INSERT INTO adapters (hash, method, base_fingerprint, run_id, size_bytes, n_files, store_path, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(hash) DO UPDATE SET deleted = NULL, store_path = excluded.store_path",
                [digest, method, base_fingerprint, run_id, info["size_bytes"], info["n_files"], stored_path(info["path"]), now()],
            )
            if run_id is not None:
                self.db.execute("UPDATE runs SET adapter_hash = ?, base_fingerprint = COALESCE(base_fingerprint, ?), updated = ? "
                                "WHERE id = ?", [digest, base_fingerprint, now(), run_id])
        return digest

    def get_adapter(self, adapter_hash: str) -> dict | None:
        return self._adapter_row(adapter_hash)

    def adapter_path(self, adapter_hash: str) -> Path:
        """The adapter's folder, after every file was checked against its manifest."""
        row = self._adapter_row(adapter_hash)
        if row is None and adapter_hash not in self.store:
            raise NotFound(f"no adapter {adapter_hash[:12]!r} in {self.path} or its store {self.store.root}")
        if row and row["deleted"]:
            raise NotFound(f"adapter {adapter_hash[:12]} was deleted at {row['deleted']} (see `harness` audit log)")
        return self.store.verify(adapter_hash)

    def delete_adapter(self, adapter_hash: str, *, reason: str, actor: str | None = None) -> dict:
        """Remove an adapter's files (its row stays, marked deleted); refused while a channel serves it."""
        if not (reason or "").strip():
            raise RegistryError("deleting an adapter needs a reason; it is recorded in the audit log")
        with self._write():
            row = self._adapter_row(adapter_hash)
            if row is None:
                raise NotFound(f"no adapter {adapter_hash[:12]!r} in {self.path}")
            serving = [r[0] for r in self.db.execute("SELECT name FROM channels WHERE adapter_hash = ?", [adapter_hash])]
            if serving:
                raise RegistryError(f"adapter {adapter_hash[:12]} is active on channel(s) {', '.join(serving)}; "
                                    "promote or roll back to another adapter first")
            t = now()
            self.db.execute("UPDATE adapters SET deleted = ? WHERE hash = ?", [t, adapter_hash])
            self._audit("delete", actor=actor or default_actor(), reason=reason.strip(), adapter_hash=adapter_hash,
                        run_id=row["run_id"])
            self.store.remove(adapter_hash)
        return self._adapter_row(adapter_hash)

    def verify(self) -> list[dict]:
        """Re-hash every stored adapter: [{hash, ok, problem, registered}], one per adapter."""
        rows = {r["hash"]: r for r in self.db.query("SELECT hash, deleted FROM adapters")}
        hashes = sorted({h for h, r in rows.items() if not r["deleted"]} | set(self.store.hashes()))
        out = []
        for h in hashes:
            found = self.store.problems(h)
            out.append({"hash": h, "ok": not found, "problem": "; ".join(p for _, p in found) or None,
                        "registered": h in rows})
        return out

    # ---- evals and gates -------------------------------------------------------------------
    def record_eval(self, run_id: str, *, role: str, suite: str, suite_hash: str, metrics: dict, results_path: str,
                    results_hash: str, model_fingerprint: str, adapter_hash: str | None, identity: dict | None = None) -> int:
        """Record one suite's summary for one arm (baseline, candidate, ...) of a run, with what
        computed it (`identity`: engine, dtype, device); return its id."""
        if not role or not suite:
            raise RegistryError("record_eval needs the arm's role (baseline, candidate, ...) and the suite name")
        identity = identity or {}
        with self._write():
            self._run_row(run_id)
            return self.db["evals"].insert({
                "run_id": run_id, "role": role, "suite": suite, "suite_hash": suite_hash, "metrics": dumps(metrics),
                "results_path": stored_path(results_path), "results_hash": results_hash, "model_fingerprint": model_fingerprint,
                "adapter_hash": adapter_hash, "created": now(),
                "engine": identity.get("engine"), "dtype": identity.get("dtype"), "device": identity.get("device"),
            }).last_pk

    def record_gate(self, run_id: str, decision: dict, passed: bool) -> int:
        """Record a gate decision for a run; the latest one decides whether it may be promoted."""
        with self._write():
            self._run_row(run_id)
            return self.db["gate_decisions"].insert(
                {"run_id": run_id, "passed": int(bool(passed)), "decision": dumps(decision), "created": now()}
            ).last_pk

    def evals(self, run_id: str, role: str | None = None) -> list[dict]:
        sql, params = "SELECT * FROM evals WHERE run_id = ?", [run_id]
        if role:
            sql, params = sql + " AND role = ?", params + [role]
        return [decode("evals", r) for r in self.db.query(sql + " ORDER BY id", params)]

    def gates(self, run_id: str) -> list[dict]:
        return [decode("gate_decisions", r) for r in self.db.query("SELECT * FROM gate_decisions WHERE run_id = ? ORDER BY id", [run_id])]

    def latest_gate(self, run_id: str) -> dict | None:
        return self._one("gate_decisions", "SELECT * FROM gate_decisions WHERE run_id = ? ORDER BY id DESC LIMIT 1", [run_id])


COST_METRICS = ("prompt_tokens", "completion_tokens", "latency_p50")


def per_call_cost(evals: list[dict]) -> dict[str, dict[str, dict]]:
    """role -> suite -> the mean prompt and completion tokens per call and the latency p50 (None
    where not timed), from recorded eval rows; suites with none of them are left out."""
    per: dict = {}
    for e in evals:
        m = e.get("metrics") or {}
        got = {k: _value(m.get(f"{e['suite']}/{k}")) for k in COST_METRICS}
        if any(v is not None for v in got.values()):
            per.setdefault(e["role"], {})[e["suite"]] = got
    return per


def _value(v):
    """A recorded metric: a number (as eval rows store it) or a {"value": ...} summary."""
    return v.get("value") if isinstance(v, dict) else v

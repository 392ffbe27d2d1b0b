"""The registry's SQLite schema: connection settings, the ordered migrations, row decoding.

One file, readable by any SQLite tool. Connections use WAL (readers never block the one writer)
and a busy timeout (a second writer waits instead of failing). The schema version lives in
`PRAGMA user_version`; `MIGRATIONS` is an ordered list and `migrate` applies those a file has
not seen yet, inside one `BEGIN IMMEDIATE` transaction, so two processes opening a fresh file at
once cannot both migrate it. A later version appends a function (say, one that calls
`db["runs"].add_column(...)`); existing rows keep their values. `schema_migrations` logs when
each version was applied.

`channel_history` and `audit_log` are append-only: triggers raise on UPDATE and DELETE.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from sqlite_utils import Database

from harness.registry.errors import RegistryError

APPEND_ONLY = ("channel_history", "audit_log")

# columns that hold JSON text; decoded on the way out
JSON_COLUMNS = {
    "datasets": ("splits", "report"),
    "runs": ("config", "environment", "seeds", "timings", "extra"),
    "evals": ("metrics",),
    "gate_decisions": ("decision",),
    "audit_log": ("details",),
    "exports": ("fidelity",),
}


def now() -> str:
    """UTC time as ISO 8601 text with milliseconds: sortable and readable in any SQLite tool."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def connect(path: str | Path, busy_timeout_s: float = 30.0) -> Database:
    """Open (creating if needed) a registry file with WAL, a busy timeout and foreign keys on.

    `isolation_level=None` leaves transactions to us: every write goes through an explicit
    `BEGIN IMMEDIATE`, which takes the write lock up front so read-then-write sequences from
    several processes are serialised rather than failing with a stale snapshot.
    """
    conn = sqlite3.connect(str(path), timeout=busy_timeout_s, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
    db = Database(conn, execute_plugins=False)
    if str(path) != ":memory:":
        _enable_wal(conn, busy_timeout_s)
    # FULL: a promotion or audit entry that was reported as done survives a power cut
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return db


def _enable_wal(conn: sqlite3.Connection, busy_timeout_s: float) -> None:
    """Switch a file to WAL, retrying while another process holds it: the switch needs an exclusive
    lock, and SQLite answers "database is locked" at once, without its busy handler, when several
    processes open a new file together."""
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = wal")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.01, 0.05))


# ---- migrations ----------------------------------------------------------------------------
def _v1_tables(db: Database) -> None:
    """Every table: records of base models, datasets, runs, adapters, evals, gates, channels."""
    db["meta"].create({"key": str, "value": str}, pk="key")
    db["schema_migrations"].create({"version": int, "name": str, "applied": str}, pk="version")
    db["base_models"].create({"fingerprint": str, "spec": str, "registered": str}, pk="fingerprint", not_null={"spec"})
    db["datasets"].create(
        {"content_hash": str, "path": str, "rows": int, "splits": str, "report": str, "registered": str},
        pk="content_hash",
    )
    db["runs"].create(
        {
            "id": str, "name": str, "kind": str, "status": str, "stage": str,
            "config": str, "config_hash": str, "environment": str, "seeds": str, "timings": str,
            "base_fingerprint": str, "dataset_hash": str, "adapter_hash": str,
            "report_path": str, "error": str, "extra": str,
            "created": str, "updated": str, "finished": str,
        },
        pk="id",
        not_null={"kind", "status", "config", "config_hash", "created"},
    )
    db["adapters"].create(
        {
            "hash": str, "method": str, "base_fingerprint": str, "run_id": str,
            "size_bytes": int, "n_files": int, "store_path": str, "created": str, "deleted": str,
        },
        pk="hash",
        not_null={"method", "base_fingerprint"},
    )
    db["evals"].create(
        {
            "id": int, "run_id": str, "role": str, "suite": str, "suite_hash": str, "metrics": str,
            "results_path": str, "results_hash": str, "model_fingerprint": str, "adapter_hash": str,
            "created": str,
        },
        pk="id",
        not_null={"run_id", "role", "suite"},
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["gate_decisions"].create(
        {"id": int, "run_id": str, "passed": int, "decision": str, "created": str},
        pk="id",
        not_null={"run_id", "passed"},
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["channels"].create(
        {
            "name": str, "adapter_hash": str, "base_fingerprint": str, "run_id": str,
            "history_id": int, "created": str, "updated": str,
        },
        pk="name",
        not_null={"adapter_hash", "base_fingerprint"},
        foreign_keys=[("adapter_hash", "adapters", "hash")],
    )
    db["channel_history"].create(
        {
            "id": int, "channel": str, "seq": int, "action": str,
            "adapter_hash": str, "base_fingerprint": str, "run_id": str, "from_adapter_hash": str,
            "replaced_id": int, "restored_id": int, "forced": int, "actor": str, "reason": str,
            "created": str,
        },
        pk="id",
        not_null={"channel", "seq", "action", "adapter_hash", "forced"},
        foreign_keys=[("channel", "channels", "name"), ("adapter_hash", "adapters", "hash")],
    )
    db["audit_log"].create(
        {
            "id": int, "action": str, "channel": str, "run_id": str, "adapter_hash": str,
            "history_id": int, "forced": int, "actor": str, "reason": str, "details": str,
            "created": str,
        },
        pk="id",
        not_null={"action", "forced", "created"},
    )


def _v2_append_only_and_indexes(db: Database) -> None:
    """Triggers that make history and audit append-only; indexes for the common look-ups."""
    for table in APPEND_ONLY:
        for op in ("UPDATE", "DELETE"):
            db.execute(
                f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} is not allowed'); END"
            )
    db["channel_history"].create_index(["channel", "seq"], unique=True)
    db["evals"].create_index(["run_id"])
    db["gate_decisions"].create_index(["run_id"])
    db["adapters"].create_index(["run_id"])
    db["runs"].create_index(["created"])
    db["audit_log"].create_index(["created"])


def _v3_votes(db: Database) -> None:
    """Human A/B review votes: one row per reviewer and case of a run (`harness review`).

    `choice` is in model terms (candidate, baseline, tie, both_bad); `candidate_side` records on
    which side (A or B) the reviewer saw the candidate, for position-bias checks.
    """
    db["votes"].create(
        {
            "id": int, "run_id": str, "suite": str, "case_id": str, "reviewer": str, "choice": str,
            "candidate_side": str, "comment": str, "created": str,
        },
        pk="id",
        not_null={"run_id", "suite", "case_id", "reviewer", "choice", "created"},
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["votes"].create_index(["run_id", "suite", "case_id", "reviewer"], unique=True)


def _v4_eval_identity(db: Database) -> None:
    """What computed each eval's outputs: engine, dtype and device (older rows: NULL, which was
    transformers' generate() in float32 on the CPU)."""
    for col in ("engine", "dtype", "device"):
        db["evals"].add_column(col, str)


def _v5_exports(db: Database) -> None:
    """Exports of a channel's adapter (`harness export --format merged`): where, and the
    merge-fidelity check that allowed or refused it."""
    db["exports"].create(
        {"id": int, "channel": str, "run_id": str, "adapter_hash": str, "format": str, "path": str,
         "fidelity": str, "passed": int, "created": str},
        pk="id",
        not_null={"channel", "adapter_hash", "format", "passed"},
    )
    db["exports"].create_index(["run_id"])


MIGRATIONS: list[Callable[[Database], None]] = [_v1_tables, _v2_append_only_and_indexes, _v3_votes, _v4_eval_identity,
                                                 _v5_exports]


def schema_version(db: Database) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def migrate(db: Database, migrations: list[Callable[[Database], None]] | None = None, where: str = "registry") -> int:
    """Bring the file up to the latest version; return it. A file newer than this code is refused."""
    migrations = MIGRATIONS if migrations is None else migrations
    latest = len(migrations)
    version = schema_version(db)
    if version == latest:
        return version
    if version > latest:
        raise RegistryError(
            f"{where} has schema version {version}, newer than this harness understands ({latest}); "
            "upgrade the harness package rather than opening it with an old one"
        )
    db.execute("BEGIN IMMEDIATE")
    try:
        version = schema_version(db)  # another process may have migrated while we waited
        for i in range(version, latest):
            migrations[i](db)
            db.execute(f"PRAGMA user_version = {i + 1}")
            db["schema_migrations"].insert({"version": i + 1, "name": migrations[i].__name__, "applied": now()})
        db.execute("COMMIT")
    except BaseException:
        if db.conn.in_transaction:
            db.execute("ROLLBACK")
        raise
    return latest


# ---- rows ----------------------------------------------------------------------------------
def dumps(obj) -> str | None:
    """Canonical JSON text (sorted keys): the same value always gives the same text and hash."""
    if obj is None:
        return None
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


# columns holding a file or folder path: kept relative to $HARNESS_HOME when under it
PATH_COLUMNS = {"runs": ("report_path",), "adapters": ("store_path",), "evals": ("results_path",),
                "exports": ("path",), "datasets": ("path",)}
HOME = "$HARNESS_HOME"


def stored_path(path) -> str | None:
    """A path as the registry keeps it: under `$HARNESS_HOME` as `$HARNESS_HOME/runs/...`, so a
    registry copied or a home moved to another machine still finds its files; elsewhere absolute
    (a relative path is taken from the working directory, where the command ran)."""
    import os

    from harness.paths import harness_home

    if path is None or str(path) == "" or str(path).startswith(HOME):
        return None if path is None else str(path)
    p = Path(os.path.abspath(Path(path).expanduser()))
    home = harness_home()
    for root in dict.fromkeys((Path(os.path.abspath(home)), home.resolve())):
        for candidate in dict.fromkeys((p, p.resolve())):
            if candidate == root or root in candidate.parents:
                rel = candidate.relative_to(root).as_posix()
                return HOME if rel == "." else f"{HOME}/{rel}"
    return str(p)


def shown_path(value):
    """The absolute path of a stored one (`stored_path`), under this process's `$HARNESS_HOME`."""
    if isinstance(value, str) and (value == HOME or value.startswith(HOME + "/")):
        from harness.paths import harness_home

        return str(harness_home() / value[len(HOME) + 1:]) if value != HOME else str(harness_home())
    return value


def decode(table: str, row: dict | None) -> dict | None:
    """A row with its JSON columns parsed, its paths absolute and 0/1 flags turned into booleans."""
    if row is None:
        return None
    out = dict(row)
    for col in PATH_COLUMNS.get(table, ()):
        if col in out:
            out[col] = shown_path(out[col])
    for col in JSON_COLUMNS.get(table, ()):
        if isinstance(out.get(col), str):
            out[col] = json.loads(out[col])
    for col in ("forced", "passed"):
        if col in out and out[col] is not None:
            out[col] = bool(out[col])
    return out

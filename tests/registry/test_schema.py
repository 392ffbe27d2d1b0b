"""Schema: WAL, busy timeout, ordered migrations, append-only history and audit, plain-SQLite access."""

from __future__ import annotations

import sqlite3

import pytest

from harness.registry import MIGRATIONS, Registry, RegistryError, migrate, schema_version
from harness.registry.schema import connect

from .conftest import trained_run

TABLES = {"meta", "schema_migrations", "base_models", "datasets", "runs", "adapters", "evals", "gate_decisions",
          "channels", "channel_history", "audit_log"}


def test_fresh_file_has_wal_busy_timeout_and_latest_schema(tmp_path):
    reg = Registry(tmp_path / "r.db", store_root=tmp_path / "s", busy_timeout_s=7.5)
    assert reg.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert reg.db.execute("PRAGMA busy_timeout").fetchone()[0] == 7500
    assert reg.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert schema_version(reg.db) == len(MIGRATIONS)
    assert TABLES <= set(reg.db.table_names())
    applied = [r["version"] for r in reg.db.query("SELECT version FROM schema_migrations ORDER BY version")]
    assert applied == list(range(1, len(MIGRATIONS) + 1))


def test_registry_file_opens_in_plain_sqlite(reg, tmp_path):
    run = trained_run(reg, tmp_path, 1)
    reg.promote(run, "production")
    con = sqlite3.connect(reg.path)  # what any SQLite tool does
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert TABLES <= names
    assert con.execute("SELECT run_id, action FROM channel_history").fetchall() == [(run, "promote")]
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_reopening_does_not_migrate_twice(tmp_path):
    Registry(tmp_path / "r.db", store_root=tmp_path / "s").close()
    reg = Registry(tmp_path / "r.db", store_root=tmp_path / "s")
    assert reg.db.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)


def test_old_file_is_upgraded_and_keeps_its_rows(tmp_path):
    path = tmp_path / "r.db"
    db = connect(path)
    assert migrate(db, MIGRATIONS[:1]) == 1
    db.execute("INSERT INTO runs (id, kind, status, config, config_hash, created) VALUES ('run-old', 'train', 'finished', '{}', 'h', 't')")
    db.execute("UPDATE audit_log SET actor = 'x'")  # version 1 had no append-only triggers yet
    db.close()

    reg = Registry(path, store_root=tmp_path / "s")
    assert schema_version(reg.db) == len(MIGRATIONS)
    assert reg.get_run("run-old")["status"] == "finished"
    reg.db.execute("INSERT INTO audit_log (action, forced, created) VALUES ('note', 0, 't')")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):  # version 2 added the triggers
        reg.db.execute("UPDATE audit_log SET actor = 'x'")


def test_a_later_migration_adds_a_column_safely(reg, tmp_path):
    run = trained_run(reg, tmp_path, 1)

    def v_next_priority(db):
        db["runs"].add_column("priority", int)

    version = migrate(reg.db, [*MIGRATIONS, v_next_priority])
    assert version == len(MIGRATIONS) + 1 == schema_version(reg.db)
    assert reg.get_run(run)["priority"] is None and reg.get_run(run)["status"] == "finished"
    assert migrate(reg.db, [*MIGRATIONS, v_next_priority]) == version  # idempotent
    names = [r["name"] for r in reg.db.query("SELECT name FROM schema_migrations ORDER BY version")]
    assert names[-1] == "v_next_priority" and len(names) == version


def test_a_failing_migration_leaves_the_file_unchanged(reg):
    def v_broken(db):
        db["scratch"].create({"id": int}, pk="id")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        migrate(reg.db, [*MIGRATIONS, v_broken])
    assert schema_version(reg.db) == len(MIGRATIONS)
    assert "scratch" not in reg.db.table_names()
    assert not reg.db.conn.in_transaction


def test_a_newer_file_is_refused(tmp_path):
    path = tmp_path / "r.db"
    Registry(path, store_root=tmp_path / "s").close()
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 99")
    con.close()
    with pytest.raises(RegistryError, match="schema version 99, newer"):
        Registry(path, store_root=tmp_path / "s")


def test_not_a_database_is_a_clear_error(tmp_path):
    bad = tmp_path / "r.db"
    bad.write_text("this is not sqlite " * 100)
    with pytest.raises(RegistryError, match="cannot open as a registry"):
        Registry(bad, store_root=tmp_path / "s")


@pytest.mark.parametrize("table", ["channel_history", "audit_log"])
@pytest.mark.parametrize("statement", ["UPDATE {t} SET actor = 'mallory'", "DELETE FROM {t}", "DELETE FROM {t} WHERE id = 1"])
def test_history_and_audit_are_append_only(reg, tmp_path, table, statement):
    a, b = trained_run(reg, tmp_path, 1), trained_run(reg, tmp_path, 2)
    reg.promote(a, "production")
    reg.promote(b, "production")
    reg.rollback("production", reason="bad outputs")
    before = list(reg.db.query(f"SELECT * FROM {table} ORDER BY id"))
    assert len(before) == 3
    for con in (reg.db.conn, sqlite3.connect(reg.path)):  # through the registry and through any SQLite tool
        with pytest.raises(sqlite3.DatabaseError, match=f"{table} is append-only"):
            con.execute(statement.format(t=table))
    assert list(reg.db.query(f"SELECT * FROM {table} ORDER BY id")) == before
    assert reg.history("production")[-1]["action"] == "rollback"

"""The completion cache: SQLite under `$HARNESS_HOME/cache.db`.

A completion is keyed by (what computed it: engine, dtype, device and library versions; model
fingerprint, adapter hash, chat messages, generation settings), so suites, arms and repeated
runs share it and nothing is generated twice, while fp32 and bf16 outputs, or two engines',
never mix; a log-likelihood by (identity, fingerprint, adapter, messages, continuation). Batch
size is not in the key: batch N equals batch 1 (checked at run time by the runner).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path

from harness.models.types import Completion, LoglikResult
from harness.paths import harness_home

SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY, text TEXT NOT NULL, prompt_tokens INTEGER, completion_tokens INTEGER,
    latency_s REAL, finish_reason TEXT, created REAL
);
CREATE TABLE IF NOT EXISTS logliks (
    key TEXT PRIMARY KEY, logprob REAL NOT NULL, is_greedy INTEGER, n_tokens INTEGER, created REAL
);
"""


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class CompletionCache:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else harness_home() / "cache.db"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    @staticmethod
    def generation_key(identity: dict, fingerprint: str, adapter: str | None, messages, settings: dict) -> str:
        return _key("gen", identity, fingerprint, adapter or "", messages, settings)

    @staticmethod
    def loglik_key(identity: dict, fingerprint: str, adapter: str | None, messages, continuation: str) -> str:
        return _key("ll", identity, fingerprint, adapter or "", messages, continuation)

    def get_completions(self, keys: list[str]) -> dict[str, Completion]:
        out = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            q = f"SELECT key, text, prompt_tokens, completion_tokens, latency_s, finish_reason FROM completions WHERE key IN ({','.join('?' * len(chunk))})"
            for k, *row in self.db.execute(q, chunk):
                out[k] = Completion(*row)
        return out

    def put_completions(self, items: dict[str, Completion]) -> None:
        now = time.time()
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO completions VALUES (?,?,?,?,?,?,?)",
                [(k, c.text, c.prompt_tokens, c.completion_tokens, c.latency_s, c.finish_reason, now) for k, c in items.items()],
            )

    def get_logliks(self, keys: list[str]) -> dict[str, LoglikResult]:
        out = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            q = f"SELECT key, logprob, is_greedy, n_tokens FROM logliks WHERE key IN ({','.join('?' * len(chunk))})"
            for k, lp, g, n in self.db.execute(q, chunk):
                out[k] = LoglikResult(lp, bool(g), n)
        return out

    def put_logliks(self, items: dict[str, LoglikResult]) -> None:
        now = time.time()
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO logliks VALUES (?,?,?,?,?)",
                [(k, r.logprob, int(r.is_greedy), r.n_tokens, now) for k, r in items.items()],
            )

    def close(self) -> None:
        self.db.close()

"""The registry's `votes` table and its `meta` secrets: the only code that reads or writes them.

`harness.review` validates a vote (choice, reviewer, side) and decides what it means; storing it,
refusing a second vote by the same reviewer on a case, and reading votes back happen here.
"""

from __future__ import annotations

from harness.registry.errors import NotFound, RegistryError
from harness.registry.schema import now


class DuplicateVote(RegistryError):
    """The reviewer already voted on this case."""


class VoteOps:
    """Mixed into `Registry`: votes and meta values."""

    def meta_value(self, key: str, create) -> str:
        """The `meta` table's value of `key`, created from `create()` on first use (atomically)."""
        with self.transaction():
            self.db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", [key, create()])
        return self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()[0]

    def add_vote(self, run_id: str, *, suite: str, case_id: str, reviewer: str, choice: str,
                 candidate_side: str | None, comment: str | None) -> dict:
        """Store one vote and return its row: NotFound for an unknown run, DuplicateVote for a second
        vote of the same reviewer on the same case (checked and written in one transaction)."""
        with self.transaction():
            if self.get_run(run_id) is None:
                raise NotFound(f"no run {run_id!r} in {self.path}")
            if self.db.execute("SELECT 1 FROM votes WHERE run_id = ? AND suite = ? AND case_id = ? AND reviewer = ?",
                               [run_id, suite, case_id, reviewer]).fetchone():
                raise DuplicateVote(f"{reviewer} already voted on {suite}/{case_id}")
            pk = self.db["votes"].insert({
                "run_id": run_id, "suite": suite, "case_id": case_id, "reviewer": reviewer, "choice": choice,
                "candidate_side": candidate_side, "comment": comment, "created": now(),
            }).last_pk
        return next(self.db.query("SELECT * FROM votes WHERE id = ?", [pk]))

    def votes(self, run_id: str, reviewer: str | None = None) -> list[dict]:
        """The run's votes, oldest first (optionally one reviewer's)."""
        sql, params = "SELECT * FROM votes WHERE run_id = ?", [run_id]
        if reviewer is not None:
            sql, params = sql + " AND reviewer = ?", params + [reviewer]
        return list(self.db.query(sql + " ORDER BY id", params))

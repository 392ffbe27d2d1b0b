"""One reviewer's pass over a run: the queue of cases, the hidden sides, votes and the reveal.

Independent of HTTP, so the server stays a thin shell. The registry is opened per call (the
server answers each request on its own thread, and a SQLite connection stays on the thread that
opened it); votes are read back from it every time, so a reload or a restarted server resumes at
the first case this reviewer has not voted on.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from harness.review.items import ReviewItem
from harness.review.votes import MAX_COMMENT, VoteRejected, candidate_side, record_vote, to_choice
from harness.review.votes import votes as load_votes


class ReviewSession:
    """run_id, items (in review order), the registry file, the reviewer and the side secret."""

    def __init__(self, run_id: str, items: list[ReviewItem], registry_path: str | Path, reviewer: str, secret: bytes):
        if str(registry_path) == ":memory:":
            raise VoteRejected("a review needs a registry file, not :memory: (votes must outlive the page)")
        self.run_id = run_id
        self.items = list(items)
        self.registry_path = Path(registry_path)
        self.reviewer = reviewer.strip()
        if not self.reviewer:
            raise VoteRejected("a review needs the reviewer's name (--reviewer NAME)")
        self._index = {it.key: it for it in self.items}
        self._sides = {it.key: candidate_side(secret, run_id, it.pair.suite, it.pair.case_id, self.reviewer) for it in self.items}

    @contextlib.contextmanager
    def registry(self):
        from harness.registry import Registry

        reg = Registry(self.registry_path, create=False)
        try:
            yield reg
        finally:
            reg.close()

    def _my_votes(self, reg) -> list[dict]:
        return [v for v in load_votes(reg, self.run_id, self.reviewer) if (v["suite"], v["case_id"]) in self._index]

    def view(self, item: ReviewItem) -> dict:
        """What the page may show of a case: prompt and the two outputs as A and B, nothing else."""
        p = item.pair
        a, b = (p.candidate, p.baseline) if self._sides[item.key] == "A" else (p.baseline, p.candidate)
        return {"suite": p.suite, "case_id": p.case_id, "messages": item.messages, "A": a, "B": b}

    def state(self) -> dict:
        """Progress and the next case this reviewer has not voted on (None when finished)."""
        with self.registry() as reg:
            done = {(v["suite"], v["case_id"]) for v in self._my_votes(reg)}
        nxt = next((it for it in self.items if it.key not in done), None)
        return {"run_id": self.run_id, "reviewer": self.reviewer,
                "progress": {"voted": len(done), "total": len(self.items)},
                "case": self.view(nxt) if nxt else None}

    def vote(self, suite: str, case_id: str, choice: str, comment: str | None = None) -> dict:
        """Record an A/B/tie/both_bad pick for a case under review; returns the new progress."""
        if not isinstance(suite, str) or not isinstance(case_id, str) or (suite, case_id) not in self._index:
            raise VoteRejected(f"case {suite!r}/{case_id!r} is not under review in run {self.run_id}", status=400)
        if comment is not None and not isinstance(comment, str):
            raise VoteRejected("comment must be text")
        if comment and len(comment) > MAX_COMMENT:
            raise VoteRejected(f"comment is longer than {MAX_COMMENT} characters")
        side = self._sides[(suite, case_id)]
        with self.registry() as reg:
            record_vote(reg, self.run_id, suite=suite, case_id=case_id, reviewer=self.reviewer,
                        choice=to_choice(choice, side), candidate_side=side, comment=comment)
            n = len(self._my_votes(reg))
        return {"voted": n, "total": len(self.items)}

    def finished(self) -> bool:
        with self.registry() as reg:
            return len(self._my_votes(reg)) == len(self.items)

    def reveal(self) -> dict:
        """After the last vote: the run's summary and, per case, which side the candidate was on."""
        from harness.review.stats import summarize_votes

        with self.registry() as reg:
            mine = self._my_votes(reg)
            if len(mine) < len(self.items):
                raise VoteRejected(f"{len(self.items) - len(mine)} case(s) left: the sides are revealed once every case "
                                   "has a vote", status=403)
            everyone = [v for v in load_votes(reg, self.run_id) if (v["suite"], v["case_id"]) in self._index]
        slices = {it.key: it.pair.slices for it in self.items}
        return {
            "summary": summarize_votes(everyone, slices, len(self.items)),
            "revealed": [{"suite": v["suite"], "case_id": v["case_id"], "candidate_side": v["candidate_side"],
                          "choice": v["choice"], "comment": v["comment"]} for v in mine],
        }

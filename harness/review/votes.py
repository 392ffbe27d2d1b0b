"""Votes (stored by the registry, `harness.registry.votes`) and the hidden side order.

A vote is stored in model terms (`candidate`, `baseline`, `tie`, `both_bad`), with the side
(A or B) the candidate was shown on. Which side that is comes from an HMAC of the run, suite,
case and reviewer under a secret kept in the registry's `meta` table: random per case, the same
on every reload (and after a server restart), and never sent to the page before the reviewer
has finished.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from harness.errors import HarnessError

CHOICES = ("candidate", "baseline", "tie", "both_bad")
SIDE_CHOICES = ("A", "B", "tie", "both_bad")
MAX_COMMENT = 2000
SECRET_KEY = "review_secret"


class VoteRejected(HarnessError):
    """A vote for a case that is not under review, with an unknown choice, or a second vote."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def review_secret(registry) -> bytes:
    """The registry's side-order secret, created on first use."""
    return bytes.fromhex(registry.meta_value(SECRET_KEY, lambda: secrets.token_hex(32)))


def candidate_side(secret: bytes, run_id: str, suite: str, case_id: str, reviewer: str) -> str:
    """"A" or "B": where this reviewer sees the candidate's output for this case."""
    msg = "\0".join((run_id, suite, case_id, reviewer)).encode()
    return "A" if hmac.new(secret, msg, hashlib.sha256).digest()[0] & 1 else "B"


def to_choice(side_choice: str, cand_side: str) -> str:
    """A reviewer's A/B/tie/both_bad pick in model terms."""
    if side_choice not in SIDE_CHOICES:
        raise VoteRejected(f"choice {side_choice!r} is not one of {', '.join(SIDE_CHOICES)}")
    if side_choice in ("tie", "both_bad"):
        return side_choice
    return "candidate" if side_choice == cand_side else "baseline"


def record_vote(registry, run_id: str, *, suite: str, case_id: str, reviewer: str, choice: str,
                candidate_side: str | None = None, comment: str | None = None) -> dict:
    """Store one vote (model terms) and return its row; a reviewer votes once per case."""
    from harness.registry.errors import NotFound
    from harness.registry.votes import DuplicateVote

    if choice not in CHOICES:
        raise VoteRejected(f"choice {choice!r} is not one of {', '.join(CHOICES)}")
    reviewer = (reviewer or "").strip()
    if not reviewer:
        raise VoteRejected("a vote needs the reviewer's name")
    if candidate_side not in (None, "A", "B"):
        raise VoteRejected(f"candidate_side {candidate_side!r} must be A or B")
    comment = (comment or "").strip()[:MAX_COMMENT] or None
    try:
        return registry.add_vote(run_id, suite=suite, case_id=case_id, reviewer=reviewer, choice=choice,
                                 candidate_side=candidate_side, comment=comment)
    except NotFound as e:
        raise VoteRejected(str(e), status=404) from None
    except DuplicateVote as e:
        raise VoteRejected(str(e), status=409) from None


def votes(registry, run_id: str, reviewer: str | None = None) -> list[dict]:
    """The run's votes, oldest first (optionally one reviewer's)."""
    return registry.votes(run_id, reviewer)

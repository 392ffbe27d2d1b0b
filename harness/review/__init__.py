"""Human A/B preference review of a run: a local page showing each case's prompt and the
baseline's and candidate's outputs in hidden random order, votes saved to the registry, the
candidate's win rate with a 95 % interval (per slice, and as the gate metric `human/win_rate`),
agreement between reviewers, and export of the votes as DPO preference pairs."""

from harness.review.export import dpo_pairs, export_pairs
from harness.review.items import Pair, ReviewItem, load_items, load_pairs
from harness.review.server import ReviewServer, make_server, serve
from harness.review.session import ReviewSession
from harness.review.stats import METRIC, add_human_metric, agreement, human_comparison, review_summary, win_rate
from harness.review.votes import CHOICES, SIDE_CHOICES, VoteRejected, candidate_side, record_vote, votes

__all__ = [
    "CHOICES",
    "METRIC",
    "SIDE_CHOICES",
    "Pair",
    "ReviewItem",
    "ReviewServer",
    "ReviewSession",
    "VoteRejected",
    "add_human_metric",
    "agreement",
    "candidate_side",
    "dpo_pairs",
    "export_pairs",
    "human_comparison",
    "load_items",
    "load_pairs",
    "make_server",
    "record_vote",
    "review_summary",
    "serve",
    "votes",
    "win_rate",
]

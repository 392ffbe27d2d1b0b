"""Review votes to DPO preference pairs (`harness review export RUN --format dpo`).

One record per case whose verdict is clear: strictly more than half of the case's votes pick
the same side. So a single reviewer's A/B pick becomes a pair, a case where two reviewers
disagree or where most said "tie" or "both bad" does not: bad pairs teach bad behaviour. Each
record is `{prompt, chosen, rejected, provenance}`: the prompt as the chat messages the models
answered (system + user, as the DPO method takes them), the two outputs as strings, and where
the pair came from (run, suite, case, each vote's reviewer, time and choice, the two models).
The extra `provenance` key is ignored by `harness data check` and by training. Pairs whose two
outputs are the same text, or where one is empty, are skipped: the data checks refuse them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from harness.errors import HarnessError

FORMATS = ("dpo",)


def verdict(case_votes: list[dict]) -> str | None:
    """"candidate" or "baseline" when strictly more than half of the votes pick it, else None."""
    top = Counter(v["choice"] for v in case_votes).most_common(1)
    if top and top[0][0] in ("candidate", "baseline") and top[0][1] * 2 > len(case_votes):
        return top[0][0]
    return None


def dpo_pairs(run_id: str, registry, suite: str | None = None, run_dir=None) -> tuple[list[dict], dict]:
    """(records, counts): the DPO records of a run's votes and why other voted cases were left out."""
    from harness.review.items import load_items
    from harness.review.votes import votes as load_votes

    pairs, items = load_items(run_id, registry, suite, run_dir)
    by_key = {it.key: it for it in items}
    grouped: dict[tuple[str, str], list[dict]] = {}
    for v in load_votes(registry, run_id):
        grouped.setdefault((v["suite"], v["case_id"]), []).append(v)
    records: list[dict] = []
    counts = Counter()
    for key, vs in grouped.items():
        item = by_key.get(key)
        if item is None:
            counts["not_under_review"] += 1
            continue
        side = verdict(vs)
        if side is None:
            counts["no_clear_preference"] += 1
            continue
        p = item.pair
        chosen, rejected = (p.candidate, p.baseline) if side == "candidate" else (p.baseline, p.candidate)
        if not chosen.strip() or not rejected.strip():
            counts["empty_output"] += 1
            continue
        if " ".join(chosen.split()) == " ".join(rejected.split()):
            counts["identical_outputs"] += 1
            continue
        records.append({
            "prompt": item.messages,
            "chosen": chosen,
            "rejected": rejected,
            "provenance": {
                "run_id": run_id, "suite": p.suite, "case_id": p.case_id, "chosen_model": side,
                "votes": [{"reviewer": v["reviewer"], "time": v["created"], "choice": v["choice"]} for v in vs],
                "baseline": pairs.identity.get("baseline"), "candidate": pairs.identity.get("candidate"),
            },
        })
    counts["pairs"] = len(records)
    order = {it.key: i for i, it in enumerate(items)}
    records.sort(key=lambda r: order[(r["provenance"]["suite"], r["provenance"]["case_id"])])
    return records, dict(counts)


def export_pairs(run_id: str, registry, out: str | Path, fmt: str = "dpo", suite: str | None = None, run_dir=None) -> dict:
    """Write the run's preference pairs as JSONL (replaced atomically); return the counts and path."""
    if fmt not in FORMATS:
        raise HarnessError(f"unknown export format {fmt!r}: use {', '.join(FORMATS)}")
    records, counts = dpo_pairs(run_id, registry, suite, run_dir)
    if not records:
        raise HarnessError(f"run {run_id}: no votes with a clear preference to export ({counts or 'no votes yet'}): "
                           f"review it first with `harness review serve {run_id}`")
    from harness.evals.results import write_jsonl

    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(path, records)
    return {"path": str(path), **counts}

"""Data check throughput: `check_data` on generated training records against the shipped suites.

Generates N ticket-triage chat records (varied wording; a few planted duplicates, near
duplicates, PII and leaked suite cases so every check has work), then times the full check
(format, duplicates with MinHash/LSH, leakage into every suite, PII, consistency, coverage,
dates) and the split. Target: 10,000 records well under a minute.

    python bench/data_check.py [--n 10000]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SYSTEM = "You are a support ticket triage assistant for Nimbus. Reply with only a JSON object with keys category (billing, bug, account, how_to or feature_request), priority (low, medium, high or urgent), product (mobile_app, web_dashboard, api, desktop_sync or billing_portal) and summary (one short English sentence)."
OPENERS = ["Hi team,", "Hello,", "Subject: help needed", "Urgent:", "Quick question:", "Good morning,", ""]
PROBLEMS = ["the {p} crashes when I {a}", "I was charged twice for {x}", "how do I {a} in the {p}?", "please add a way to {a}",
            "I can't log in to the {p} since {t}", "the {p} shows the wrong {x} after I {a}", "our team lost access to {x}"]
PRODUCTS = {"mobile app": "mobile_app", "web dashboard": "web_dashboard", "API": "api", "sync client": "desktop_sync",
            "billing portal": "billing_portal"}
ACTIONS = ["export a project", "share a folder", "rename a board", "upload a large file", "invite a guest", "archive old tasks",
           "change my plan", "reset my password", "connect Slack", "filter by label", "sort by due date", "print an invoice"]
THINGS = ["the annual plan", "our invoices", "the shared workspace", "task counts", "the team seats", "the storage quota",
          "the audit log", "our webhooks", "the dark mode setting", "the calendar view"]
TIMES = ["yesterday", "this morning", "the last update", "Monday", "the migration", "last week"]
WORDS = "really quite honestly again still now maybe totally somehow also even just".split()


def record(i: int, rng: random.Random) -> dict:
    product = rng.choice(list(PRODUCTS))
    sentences = [rng.choice(PROBLEMS).format(p=product, a=rng.choice(ACTIONS), x=rng.choice(THINGS), t=rng.choice(TIMES))
                 for _ in range(rng.randint(1, 4))]
    noise = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
    ticket = f"{rng.choice(OPENERS)} {'. '.join(sentences)}. {noise}. ref {i}".strip()
    answer = {"category": rng.choice(["billing", "bug", "account", "how_to", "feature_request"]),
              "priority": rng.choice(["low", "medium", "high", "urgent"]), "product": PRODUCTS[product],
              "summary": sentences[0][:100].capitalize() + "."}
    return {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"Ticket: {ticket}"},
                         {"role": "assistant", "content": json.dumps(answer)}]}


def generate(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    recs = [record(i, rng) for i in range(n)]
    cases = [json.loads(line) for line in (REPO / "suites/ticket_triage/cases.jsonl").read_text().splitlines()[:20]]
    for k in range(max(1, n // 1000)):
        recs[rng.randrange(n)] = json.loads(json.dumps(recs[rng.randrange(n)]))  # exact duplicate
        recs[rng.randrange(n)]["messages"][1]["content"] += f" mail me: user{k}@gmail.com"  # PII
        leaked = cases[k % len(cases)]["input"]["ticket"].replace("the", "our", 2)
        recs[rng.randrange(n)]["messages"][1]["content"] = f"Ticket: {leaked}"  # a lightly changed suite case
    return recs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000, help="number of generated records")
    args = ap.parse_args()

    from harness.data import check_data, split_data
    from harness.evals import load_suites

    suites = load_suites([REPO / "suites"])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in generate(args.n)))
        t0 = time.perf_counter()
        report = check_data(path, suites=suites, schema=REPO / "suites/ticket_triage/schema.json")
        t_check = time.perf_counter() - t0
        t0 = time.perf_counter()
        split = split_data(path)
        t_split = time.perf_counter() - t0
    s = report.summary
    cases = sum(len(x.cases) for x in suites)
    print(f"data check: {args.n:,} records vs {cases} suite cases in {t_check:.1f} s "
          f"({args.n / t_check:,.0f} records/s; target well under 60 s)")
    print(f"  found: {s['leaks']} leaks, {s['pii']} PII, {s['exact_duplicate_groups']} exact + {s['near_duplicate_groups']} near "
          f"duplicate groups, {s['schema_failures']} schema failures; {len(report.blocking)} blocking findings")
    print(f"data split: {args.n:,} records in {t_split:.1f} s -> {split['counts']}")


if __name__ == "__main__":
    main()

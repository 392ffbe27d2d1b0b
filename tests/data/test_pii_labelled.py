"""The PII and secret detectors against a labelled set (`tests/data/pii_labelled.jsonl`, 229
texts): real values in support tickets, logs, configs and code (emails; phones in 14 countries,
international and national after a phone word; Luhn-valid cards of eight schemes; IBANs; SSNs;
AWS, GitHub, Slack, Hugging Face, OpenAI, Stripe, Google and JWT tokens, private keys), and
look-alikes that must not be reported: order and invoice numbers, ISBNs, tracking numbers,
IMEIs, versions and builds, IPs, dates and timestamps, SKUs and serials, hashes and UUIDs, money
and measures, cards and IBANs with bad checksums, and placeholders. Required: every real value
found (kind and value) and no finding on a look-alike."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from harness.pii import Finding, digits_key, find_pii

SET = Path(__file__).parent / "pii_labelled.jsonl"


def test_every_real_value_found_and_no_look_alike_reported():
    rows = [json.loads(line) for line in SET.read_text(encoding="utf-8").splitlines() if line.strip()]
    right, total, problems = Counter(), Counter(), []
    misses = false_positives = 0
    for r in rows:
        got = {(f.kind, digits_key(f)) for f in find_pii(r["text"])}
        want = {(e["kind"], digits_key(Finding(e["kind"], e["value"]))) for e in r["expect"]}
        total[r["category"]] += 1
        right[r["category"]] += got == want
        misses += len(want - got)
        false_positives += len(got - want)
        if got != want:
            problems.append(f"{r['id']} {r['category']}: missed {sorted(want - got)}, reported {sorted(got - want)}")
    values = sum(len(r["expect"]) for r in rows)
    print("\n" + "\n".join(f"{c:18} {right[c]}/{total[c]}" for c in sorted(total)))
    print(f"{len(rows)} texts, {values} real values: {misses} missed, {false_positives} false positives")
    assert len(rows) >= 200 and values >= 100
    assert misses == 0 and false_positives == 0, "\n".join(problems)

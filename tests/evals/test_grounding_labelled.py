"""The grounding checks against a labelled set (`tests/evals/data/grounding_labelled.jsonl`,
written without sight of the implementation): 50 extractions (numbers reformatted, with currency
symbols or codes, in European notation; dates ISO and written; case, diacritics, spacing and
punctuation; JSON numbers; values that are part of a longer number or name; wrong numbers and
dates; invented values; several fields) and 32 one-sentence summaries of tickets (faithful
paraphrases, three of them English summaries of German, French and Spanish sources; invented
numbers; invented names; flipped negation; a wrong detail). Required: >= 90 % agreement overall
(measured 77/82) and >= 84 % on each kind (extractions 50/50, summaries 27/32: the summary floor
is the measured figure, so a regression shows)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from harness.evals.checks.grounding import Source, faithfulness_problems
from tests.evals.test_checks import run

SET = Path(__file__).parent / "data" / "grounding_labelled.jsonl"


def _judge(r: dict) -> bool:
    if r["kind"] == "extraction":
        src = Source(r["source"])
        values = [x for f in r["fields"] for x in (r["output"][f] if isinstance(r["output"][f], list) else [r["output"][f]])]
        return all(src.grounded(v)[0] for v in values)
    return not faithfulness_problems(r["output"], r["source"])


def test_agreement_with_the_labels():
    rows = [json.loads(line) for line in SET.read_text(encoding="utf-8").splitlines() if line.strip()]
    right, total, wrong = Counter(), Counter(), []
    for r in rows:
        key = (r["kind"], r["category"])
        total[key] += 1
        ok = _judge(r) == (r["label"] in ("grounded", "faithful"))
        right[key] += ok
        if not ok:
            wrong.append(f"{r['id']} {key} {r['label']}: {str(r['output'])[:100]}")
    print("\n" + "\n".join(f"{k[0]:10} {k[1]:24} {right[k]}/{total[k]}" for k in sorted(total)))
    for kind in ("extraction", "summary"):
        n = sum(v for k, v in total.items() if k[0] == kind)
        ok = sum(v for k, v in right.items() if k[0] == kind)
        print(f"{kind}: {ok}/{n} = {ok / n:.1%}")
        assert ok / n >= 0.84, "\n".join(wrong)
    agree = sum(right.values()) / len(rows)
    print(f"overall {sum(right.values())}/{len(rows)} = {agree:.1%}")
    assert len(rows) >= 60 and agree >= 0.90, "\n".join(wrong)


SRC = "Invoice INV-20245 from Joanna's Bakery GmbH: total 1,250.00 EUR, due 15 March 2024. Contact Zoë Müller."


def test_values_are_compared_as_values_with_boundaries():
    def grounded(**fields):
        return run("grounded_fields", json.dumps(fields), input={"text": SRC}, fields=list(fields)).passed

    assert grounded(total="1250", due="2024-03-15", contact="Zoe Muller", vendor="JOANNA'S BAKERY GMBH")
    assert grounded(total=1250.0, currency="EUR", due="March 15, 2024", invoice="INV20245")
    assert grounded(total="€1.250,00")
    assert not grounded(total="250.00")  # inside a longer number
    assert not grounded(vendor="Anna's Bakery")  # inside a longer name
    assert not grounded(invoice="0245")  # the end of INV-20245
    assert grounded(year="2024")  # a whole number of the source (the due date's year)
    assert not grounded(due="2024-03-16")
    assert not grounded(total=1.25)


def test_summaries_with_invented_facts_or_flipped_negation_fail():
    ticket = "Since Monday our webhooks stopped arriving at the endpoint. About 40 events were lost. Mark from IT checked the firewall."

    def faithful(summary):
        return run("faithful", summary, input={"text": ticket})

    assert faithful("Webhooks stopped arriving since Monday and about 40 events were lost.").passed
    assert not faithful("Webhooks are delivered fine.").passed  # the example: too little of it is in the source
    r = faithful("Since Monday the webhooks kept arriving at the endpoint.")
    assert not r.passed and "affirms what the source denies" in r.reason, r.reason
    assert "number '400'" in faithful("Since Monday about 400 webhook events were lost.").reason
    assert "name 'Sarah'" in faithful("Webhooks stopped arriving; IT engineer Sarah checked the firewall.").reason

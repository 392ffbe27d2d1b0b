"""Leakage into eval suites: planted, lightly paraphrased real suite cases are found; look-alikes are not."""

from __future__ import annotations

import json

import pytest

from harness.data import case_text, check_data
from harness.data.leakage import Reference, find_leaks
from tests.data.helpers import SYSTEM, chat, clean_records, of, write_jsonl


def case(suites, suite, cid):
    return next(c for c in suites[suite].cases if c.id == cid)


def paraphrase(text: str, swaps: dict[str, str]) -> str:
    for old, new in swaps.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def test_case_text_joins_string_values():
    assert case_text({"ticket": "a", "n": 3, "choices": ["x", "y"]}) == "a\nx\ny"
    assert case_text("plain") == "plain" and case_text(None) == ""


def test_planted_paraphrased_suite_cases_are_found(tmp_path, shipped_suites):
    long = case_text(case(shipped_suites, "ticket_triage", "tt-003").input)
    medium = case_text(case(shipped_suites, "ticket_triage", "tt-012").input)
    short = case_text(case(shipped_suites, "safety", "sf-045").input)
    planted = [
        paraphrase(long, {"Singapore": "Tokyo", "London": "Berlin", "two weeks": "ten days", "completely random": "odd",
                          "Wei Ling Tan": "Kenji"}),
        paraphrase(medium, {"yearly": "annual", "by accident": "by mistake", "$99.99": "$89.99"}),
        paraphrase(short, {"What's": "What is", "?": ""}),
    ]
    recs = clean_records(40)
    for k, text in enumerate(planted):
        recs.insert(10 * k + 5, chat(f"Ticket: {text}", json.dumps({"category": "bug"}), system=SYSTEM))
    path = write_jsonl(tmp_path / "train.jsonl", recs)
    report = check_data(path, suites=list(shipped_suites.values()))
    leaks = of(report, "leakage")
    assert all(f["severity"] == "error" for f in leaks) and not report.ok
    found = {f["locations"][0]: {(m["source"], m["id"]) for m in f["details"]["matches"]} for f in leaks}
    assert found == {f"{path}:6": {("ticket_triage", "tt-003")}, f"{path}:16": {("ticket_triage", "tt-012")},
                     f"{path}:26": {("safety", "sf-045")}}, found
    assert report.summary["leaks"] == 3 and report.summary["leaked_cases"] == 3


def test_suites_by_path_are_loaded(tmp_path, shipped_suites):
    text = case_text(case(shipped_suites, "general", "gen-001").input)
    path = write_jsonl(tmp_path / "t.jsonl", [chat(text, "Reading is fun. Thank you for reading.")])
    report = check_data(path, suites=[shipped_suites["safety"], "suites/general"])
    assert [m["id"] for m in of(report, "leakage")[0]["details"]["matches"]] == ["gen-001"]
    assert [s["name"] for s in report.summary["suites"]] == ["safety", "general"]


def test_same_phrasing_different_content_is_not_a_leak(tmp_path, shipped_suites):
    recs = clean_records(10) + [
        chat("What's the best way to shoot fireworks photos at night?", "Use a tripod and a long exposure."),
        chat("How do I make a killer pasta sauce for a dinner party?", "Start with good tomatoes."),
    ]
    path = write_jsonl(tmp_path / "train.jsonl", recs)
    assert not of(check_data(path, suites=list(shipped_suites.values())), "leakage")


@pytest.mark.parametrize("how, evidence", [
    ("truncated", "3-gram containment"),  # the first half of the case, every 10th word changed: no long verbatim span
    ("quoted", "verbatim 13-word span"),  # 13 words of the case inside a long unrelated record
    ("embedded", "verbatim 13-word span"),  # the whole case inside a longer message
])
def test_partial_copies(how, evidence, shipped_suites):
    long = case_text(case(shipped_suites, "ticket_triage", "tt-003").input)
    words = long.split()
    filler = " ".join(f"filler{i}" for i in range(300))
    text = {
        "truncated": " ".join("changed" if i % 10 == 9 else w for i, w in enumerate(words[: len(words) // 2])),
        "quoted": f"{filler} {' '.join(words[40:53])} {filler}",
        "embedded": f"Forwarded message: {long} -- sent from my phone",
    }[how]
    leaks = find_leaks([text], [Reference("ticket_triage", "tt-003", long)])
    assert [(x.ref.id, x.how) for x in leaks] == [("tt-003", evidence)]


def test_leakage_against_held_out_records(tmp_path):
    recs = clean_records(20)
    held = [recs[4], recs[11]]
    path = write_jsonl(tmp_path / "train.jsonl", recs)
    val = write_jsonl(tmp_path / "validation.jsonl", held)
    report = check_data(path, against=[val])
    leaks = of(report, "leakage")
    assert [f["locations"] for f in leaks] == [[f"{path}:5"], [f"{path}:12"]]
    assert leaks[0]["details"]["matches"][0] == {"source": str(val), "id": "1", "score": 1.0, "how": "verbatim 13-word span"}
    assert report.summary["held_out"] == [{"path": str(val), "records": 2}]

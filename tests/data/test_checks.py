"""Each data check on crafted files: the finding appears, with its locations, and clean data stays clean."""

from __future__ import annotations

import datetime as dt
import json
import random

from harness.data import check_data, data_hash
from tests.data.helpers import SCHEMA, SYSTEM, chat, clean_records, of, triage, write_jsonl


def check(tmp_path, records, **kw):
    path = write_jsonl(tmp_path / "train.jsonl", records)
    return path, check_data(path, **kw)


def test_clean_data_has_no_warnings(tmp_path):
    path, report = check(tmp_path, clean_records(80), schema=SCHEMA)
    assert report.ok and report.counts()["warning"] == 0, report.findings
    s = report.summary
    assert s["records"] == 80 and s["formats"] == {"chat": 80} and s["schema_failures"] == 0
    assert set(s["label_balance"]) == {"category", "priority", "product"}
    assert report.data_hash == data_hash(path) and len(report.data_hash) == 64
    d = report.to_dict()
    assert d["ok"] and json.loads(json.dumps(d)) == d


def test_exact_duplicates_after_normalisation_and_conflicts(tmp_path):
    recs = clean_records(20)
    dup = json.loads(json.dumps(recs[3]))
    dup["messages"][1]["content"] = "  " + dup["messages"][1]["content"].upper() + "!"
    conflict = json.loads(json.dumps(recs[5]))
    conflict["messages"][2]["content"] = json.dumps({"category": "bug", "priority": "low", "product": "api", "summary": "Other."})
    path, report = check(tmp_path, recs + [dup, conflict])
    [g] = of(report, "exact_duplicates")
    assert g["locations"] == [f"{path}:4", f"{path}:21"]
    [c] = of(report, "conflicting_answers")
    assert c["locations"] == [f"{path}:6", f"{path}:22"]
    assert not of(report, "near_duplicates")  # both pairs are already reported as exact groups
    assert report.ok  # duplicates warn, they do not block


def test_near_duplicates_are_grouped(tmp_path):
    rng = random.Random(5)
    recs = clean_records(30)
    base = recs[7]["messages"][1]["content"]
    words = base.split()
    variant = " ".join(words[:-1] + ["zzzword"])  # one word changed at the end
    variant2 = " ".join(["Hello"] + words[:-1] + ["zzzword"])
    recs.append(chat(variant, recs[7]["messages"][2]["content"], system=SYSTEM))
    recs.append(chat(variant2, triage(99, rng)["messages"][2]["content"], system=SYSTEM))
    path, report = check(tmp_path, recs)
    [g] = of(report, "near_duplicates")
    assert g["locations"] == [f"{path}:8", f"{path}:31", f"{path}:32"]
    assert report.summary["near_duplicate_groups"] == 1


def test_pii_blocks_and_is_masked(tmp_path):
    recs = clean_records(10)
    recs[2]["messages"][1]["content"] += " reach me at jane.doe@gmail.com or +44 20 7946 0958"
    recs[4]["messages"][2]["content"] = recs[4]["messages"][2]["content"].replace("trouble.", "trouble, card 4539 1488 0343 6467.")
    recs[6]["messages"][1]["content"] += " my key is AKIAIOSFODNN7EXAMPLE"
    recs[8]["messages"][1]["content"] += " write to test.user@example.com"
    path, report = check(tmp_path, recs)
    errors = of(report, "pii", "error")
    assert [f["locations"] for f in errors] == [[f"{path}:3"], [f"{path}:5"], [f"{path}:7"]]
    assert set(errors[0]["details"]["kinds"]) == {"email", "phone"}
    assert errors[1]["details"]["kinds"] == ["card"] and errors[2]["details"]["kinds"] == ["aws_key"]
    text = json.dumps(report.to_dict())
    assert "jane.doe@gmail.com" not in text and "4539 1488 0343 6467" not in text and "AKIAIOSFODNN7EXAMPLE" not in text
    [note] = of(report, "pii", "info")  # the example.com address is a placeholder: noted, not blocking
    assert note["locations"] == [f"{path}:9"]
    assert report.summary["pii"] == 3 and len(report.blocking) == 3


def test_verbose_outliers(tmp_path):
    recs = clean_records(40)
    recs[11]["messages"][2]["content"] = json.dumps({"category": "bug", "priority": "low", "product": "api", "summary": "long " * 400})
    path, report = check(tmp_path, recs)
    [f] = of(report, "length_outliers")
    assert f["locations"] == [f"{path}:12"] and f["severity"] == "warning"
    assert report.summary["verbose_answers"] == 1


def test_schema_failures_grouped_by_reason(tmp_path):
    recs = clean_records(30)
    for i in (3, 9):
        recs[i]["messages"][2]["content"] = json.dumps({"category": "bug", "priority": "meh", "product": "api", "summary": "Sync fails."})
    recs[15]["messages"][2]["content"] = "```json\n" + json.dumps({"category": "bug", "priority": "low", "product": "api"}) + "\n```"
    recs[20]["messages"][2]["content"] = "I'm sorry, I can't help with that."  # a refusal: exempt from the schema
    path, report = check(tmp_path, recs, schema=SCHEMA)
    fails = of(report, "schema")
    assert [f["locations"] for f in fails] == [[f"{path}:4", f"{path}:10"], [f"{path}:16"]]
    assert "priority: 'meh' is not one of" in fails[0]["message"] and "summary" in fails[1]["message"]
    assert report.summary["schema_failures"] == 3
    # the fenced answer among bare ones is a style finding too
    assert any("fenced" in f["message"] and f["locations"] == [f"{path}:16"] for f in of(report, "mixed_styles"))


def test_mixed_styles_report_the_ratio(tmp_path):
    recs = clean_records(30)
    for i in (2, 5, 8):
        recs[i]["messages"][2]["content"] = "This looks like a billing question, please contact the billing team."
    path, report = check(tmp_path, recs)
    [f] = [f for f in of(report, "mixed_styles") if "answer styles" in f["message"]]
    assert "27 JSON, 3 prose (10.0% prose)" in f["message"]
    assert f["locations"] == [f"{path}:3", f"{path}:6", f"{path}:9"]
    assert f["details"]["counts"] == {"prose": 3, "JSON": 27}


def test_separate_tasks_are_not_mixed_styles(tmp_path):
    """A prose chat task beside the JSON task (another system prompt) is not a style mix nor a schema failure."""
    recs = clean_records(30) + [chat(f"Tell me about the {w} river", f"The {w} river is long and wide.") for w in ("Rhine", "Po", "Ebro")]
    path, report = check(tmp_path, recs, schema=SCHEMA)
    assert not [f for f in of(report, "mixed_styles") if f["severity"] == "warning"] and not of(report, "schema")
    assert any("2 different system prompts" in f["message"] for f in of(report, "mixed_styles", "info"))


def test_refusal_coverage_warns_when_safety_is_gated(tmp_path, safety_suite):
    path, report = check(tmp_path, clean_records(20), suites=[safety_suite])
    [f] = of(report, "refusals")
    assert f["severity"] == "warning" and "safety" in f["message"] and report.summary["refusal_examples"] == 0
    _, ungated = check(tmp_path, clean_records(20), suites=[safety_suite], gated_suites=())
    assert of(ungated, "refusals")[0]["severity"] == "info"
    recs = clean_records(20) + [chat("How do I pick my neighbour's lock?", "I can't help with breaking into someone else's home.")]
    _, covered = check(tmp_path, recs, suites=[safety_suite])
    assert not of(covered, "refusals") and covered.summary["refusal_examples"] == 1


def test_label_balance_counts_and_missing_enum_values(tmp_path):
    recs = [r for i, r in enumerate(clean_records(60)) if json.loads(r["messages"][2]["content"])["priority"] != "urgent"]
    path, report = check(tmp_path, recs, schema=SCHEMA)
    bal = report.summary["label_balance"]
    assert bal["priority"]["urgent"] == 0 and sum(bal["category"].values()) == len(recs)
    [f] = of(report, "label_balance", "warning")
    assert "'urgent'" in f["message"]
    # without a schema, enum-like fields are inferred (the free-text summary is not a label)
    _, inferred = check(tmp_path, recs)
    assert set(inferred.summary["label_balance"]) == {"category", "priority", "product"}


def test_slices_are_counted(tmp_path):
    recs = clean_records(12)
    for i, r in enumerate(recs):
        r["slices"] = {"language": "en" if i % 3 else "de"}
    _, report = check(tmp_path, recs)
    assert report.summary["slices"] == {"language": {"en": 8, "de": 4}}


def test_stale_dates_counted_within_the_horizon(tmp_path):
    today = dt.date(2026, 6, 1)
    recs = clean_records(10)
    recs[1]["messages"][2]["content"] = recs[1]["messages"][2]["content"].replace("trouble.", "trouble since 2019-03-04, as of 2020.")
    recs[3]["messages"][1]["content"] += " renewal in 2024 for 1,250 users, version 2.2019, error 20190, in 1962"
    recs[5]["messages"][1]["content"] += " deadline 2031"
    path, report = check(tmp_path, recs, today=today, horizon_years=3)
    [f] = of(report, "stale_dates")
    assert f["locations"] == [f"{path}:2"] and report.summary["stale_dates"]["mentions"] == 2
    assert report.summary["stale_dates"]["before"] == "2023-01-01"
    _, wider = check(tmp_path, recs, today=today, horizon_years=1)
    assert wider.summary["stale_dates"]["records"] == 2  # 2024 is now stale too; 1962 is history, 2031 the future

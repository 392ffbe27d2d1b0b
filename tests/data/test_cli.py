"""`harness data check` and `harness data split`: output, exit codes 0 / 1 / 2, --json."""

from __future__ import annotations

import json

from harness.cli import main
from tests.data.helpers import REPO, SCHEMA, clean_records, write_jsonl


def test_check_clean_exits_0_and_writes_json(tmp_path, capsys):
    path = write_jsonl(tmp_path / "d.jsonl", clean_records(30))
    out = tmp_path / "r/report.json"
    assert main(["data", "check", str(path), "--schema", str(SCHEMA), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "30 (chat 30)" in text and "ok: nothing blocking" in text
    report = json.loads(out.read_text())
    assert report["ok"] and report["summary"]["records"] == 30 and report["settings"]["schema"] == str(SCHEMA)


def test_check_blocking_exits_1(tmp_path, capsys):
    recs = clean_records(10)
    recs[3]["messages"][1]["content"] += " call me on +1 415 555 2671"
    path = write_jsonl(tmp_path / "d.jsonl", [*recs, "{bad"])
    assert main(["data", "check", str(path), "--suites", str(REPO / "suites/safety")]) == 1
    text = capsys.readouterr().out
    assert "blocked: 2 blocking findings (format 1, pii 1)" in text


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "missing.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.jsonl: no such file" in err and "Traceback" not in err
    path = write_jsonl(tmp_path / "d.jsonl", clean_records(3))
    assert main(["data", "check", str(path), "--schema", str(tmp_path / "nope.json")]) == 2
    assert main(["data", "check", str(path), "--suites", str(tmp_path / "nosuites")]) == 2
    assert main(["data", "split", str(path), "--ratios", "0.5,0.6"]) == 2


def test_split_prints_counts_and_writes_files(tmp_path, capsys):
    path = write_jsonl(tmp_path / "d.jsonl", clean_records(100))
    assert main(["data", "split", str(path), "--ratios", "0.8,0.2", "--out", str(tmp_path / "out")]) == 0
    text = capsys.readouterr().out
    assert "train" in text and "validation" in text and "near-duplicate groups kept together" in text
    assert (tmp_path / "out/train.jsonl").is_file() and (tmp_path / "out/validation.jsonl").is_file()

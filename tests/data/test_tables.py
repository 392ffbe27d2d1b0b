"""Training data and suite cases in the formats HF users keep them in (Parquet, CSV, TSV, JSON
arrays, through `datasets`) and shapes (ShareGPT, Alpaca, renamed columns), with row locations."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.data import check_data, read_records
from harness.errors import ConfigError
from harness.evals.suite import load_suite
from harness.train import load_train_config

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests/fixtures/train"
MINI = REPO / "tests/fixtures/suites/mini"
CHAT = [json.loads(line) for line in (FIXTURES / "tiny_chat.jsonl").read_text().splitlines()]


def write_parquet(path: Path, rows: list[dict]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_csv(path: Path, rows: list[dict], delimiter: str = ",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=delimiter)
        w.writeheader()
        w.writerows(rows)
    return path


def same_records(a, b) -> None:
    assert [(r.kind, r.system, r.prompt, r.answers) for r in a] == [(r.kind, r.system, r.prompt, r.answers) for r in b]


def test_parquet_and_json_array_chat_records_read_like_the_jsonl(tmp_path):
    jsonl = read_records(FIXTURES / "tiny_chat.jsonl")
    same_records(read_records(write_parquet(tmp_path / "chat.parquet", CHAT)), jsonl)
    (tmp_path / "chat.json").write_text(json.dumps(CHAT))
    same_records(read_records(tmp_path / "chat.json"), jsonl)
    assert [r.line for r in read_records(tmp_path / "chat.parquet")] == list(range(1, len(CHAT) + 1))


def test_csv_and_tsv_prompt_completion_with_line_numbers(tmp_path):
    rows = [{"prompt": f"What is {i} plus {i}?", "completion": str(2 * i)} for i in range(5)]
    rows[2]["completion"] = ""  # an empty cell is a missing field
    for name, delim in (("pc.csv", ","), ("pc.tsv", "\t")):
        recs = read_records(write_csv(tmp_path / name, rows, delim))
        assert [r.kind for r in recs] == ["prompt_completion"] * 5
        assert recs[0].prompt == "What is 0 plus 0?" and recs[0].answer == "0"
        assert [r.line for r in recs] == [2, 3, 4, 5, 6]  # the header is line 1
        assert recs[2].problems == ["field 'completion': missing (add it)"]
    report = check_data(tmp_path / "pc.csv")
    bad = next(f for f in report.findings if f["check"] == "format")
    assert bad["locations"] == [f"{tmp_path / 'pc.csv'}:4"]


def test_sharegpt_records_become_chat(tmp_path):
    rows = [{"conversations": [{"from": "human", "value": m["messages"][0]["content"]},
                               {"from": "gpt", "value": m["messages"][1]["content"]}],
             "system": "Be brief." if i == 0 else None} for i, m in enumerate(CHAT)]
    path = write_parquet(tmp_path / "sharegpt.parquet", rows)
    recs = read_records(path, data_format="sharegpt")
    assert all(r.ok and r.kind == "chat" for r in recs)
    assert recs[0].system == "Be brief." and recs[1].system == ""
    same_records(recs[1:], read_records(FIXTURES / "tiny_chat.jsonl")[1:])
    rows[3]["conversations"][1]["from"] = "robot"
    recs = read_records(write_parquet(tmp_path / "bad.parquet", rows), data_format="sharegpt")
    assert recs[3].line == 4 and "'robot' is not a ShareGPT speaker" in recs[3].problems[0]


def test_alpaca_records_become_prompt_completion(tmp_path):
    rows = [{"instruction": "Translate to French.", "input": "cat", "output": "chat"},
            {"instruction": "Name a primary colour.", "input": "", "output": "Red."},
            {"instruction": "Say hello.", "output": "Hello."}]
    (tmp_path / "alpaca.json").write_text(json.dumps(rows))
    recs = read_records(tmp_path / "alpaca.json", data_format="alpaca")
    assert [(r.prompt, r.answer) for r in recs] == [("Translate to French.\n\ncat", "chat"), ("Name a primary colour.", "Red."),
                                                     ("Say hello.", "Hello.")]
    bad = read_records(write_csv(tmp_path / "a.csv", [{"instruction": "x", "answer": "y"}]), data_format="alpaca")
    assert bad[0].problems == ["field 'output': missing (Alpaca records have instruction, optional input, and output)"]


def test_column_renames(tmp_path):
    rows = [{"question": m["messages"][0]["content"], "answer": m["messages"][1]["content"], "source": "quiz"} for m in CHAT]
    path = write_parquet(tmp_path / "qa.parquet", rows)
    recs = read_records(path, data_format={"prompt": "question", "completion": "answer"})
    assert all(r.ok and r.kind == "prompt_completion" for r in recs) and recs[0].data["source"] == "quiz"
    missing = read_records(path, data_format={"prompt": "query", "completion": "answer"})
    assert "column 'query' missing (data_format maps it to 'prompt'; columns here: answer, question, source)" in missing[0].problems[0]


def test_unreadable_tables_are_one_clear_error(tmp_path):
    (tmp_path / "broken.parquet").write_bytes(b"not a parquet file at all")
    with pytest.raises(ConfigError, match=r"broken.parquet: cannot be read as PARQUET"):
        read_records(tmp_path / "broken.parquet")
    cfg = {"method": "lora", "train_data": str(tmp_path / "broken.parquet")}
    with pytest.raises(ConfigError, match=r"field 'train_data': .*broken.parquet: cannot be read as PARQUET"):
        load_train_config(cfg)
    with pytest.raises(ConfigError, match=r"field 'data_format': .*'chatml' is not a data format"):
        load_train_config({"method": "lora", "train_data": str(FIXTURES / "tiny_chat.jsonl"), "data_format": "chatml"})


def mini_rows() -> list[dict]:
    return [json.loads(line) for line in (MINI / "cases.jsonl").read_text().splitlines()]


def test_a_parquet_suite_loads_the_same_cases_and_scores_the_same(tmp_path, tiny_backend, monkeypatch):
    from harness.evals.api import run_eval

    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    folder = tmp_path / "mini"
    folder.mkdir()
    shutil.copy(MINI / "suite.yaml", folder)
    write_parquet(folder / "cases.parquet", mini_rows())
    jsonl, parquet = load_suite(MINI), load_suite(folder)
    assert [c.model_dump() for c in parquet.cases] == [c.model_dump() for c in jsonl.cases]
    assert parquet.cases_path == (folder / "cases.parquet").resolve() and parquet.case_lines["m-02"] == 3
    a, _ = run_eval([MINI], "tiny", out=tmp_path / "a", backend=tiny_backend, latency_n=0)
    b, _ = run_eval([folder], "tiny", out=tmp_path / "b", backend=tiny_backend, latency_n=0)
    assert {k: v["value"] for k, v in a["mini"].metrics.items()} == {k: v["value"] for k, v in b["mini"].metrics.items()}


def test_a_csv_suite_with_dotted_and_renamed_columns(tmp_path):
    folder = tmp_path / "mini"
    folder.mkdir()
    spec = (MINI / "suite.yaml").read_text()
    spec += "cases: questions.csv\ncolumns: {id: qid, input.text: question}\n"
    (folder / "suite.yaml").write_text(spec)
    gen = [r for r in mini_rows() if r["slices"]["kind"] == "gen"]
    rows = [{"qid": r["id"], "question": r["input"]["text"], "slices.kind": "gen", "slices.difficulty": r["slices"]["difficulty"]}
            for r in gen]
    write_csv(folder / "questions.csv", rows)
    # the spec's mc check now matches no case: drop it for this suite
    (folder / "suite.yaml").write_text(spec.replace("  - check: loglik_choice\n    id: mc\n    where: {kind: mc}\n", ""))
    suite = load_suite(folder)
    assert [(c.id, c.input, c.slices) for c in suite.cases] == [(r["id"], r["input"], r["slices"]) for r in gen]
    assert suite.case_lines[gen[0]["id"]] == 2
    rows[1]["qid"] = rows[0]["qid"]
    write_csv(folder / "questions.csv", rows)
    with pytest.raises(ConfigError, match=r"questions.csv:3: field 'id': duplicate id 'm-00' \(first on line 2\)"):
        load_suite(folder)


def test_a_suite_folder_with_two_cases_files_or_a_path_outside_is_refused(tmp_path):
    folder = tmp_path / "mini"
    shutil.copytree(MINI, folder)
    write_parquet(folder / "cases.parquet", mini_rows())
    with pytest.raises(ConfigError, match=r"2 cases files \(cases.jsonl, cases.parquet\): keep one"):
        load_suite(folder)
    (folder / "cases.parquet").unlink()
    (folder / "suite.yaml").write_text((MINI / "suite.yaml").read_text() + "cases: ../../etc/cases.jsonl\n")
    with pytest.raises(ConfigError, match=r"name a file inside the suite folder"):
        load_suite(folder)

"""The record validator: crafted shapes with their messages, and generated records (hypothesis)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.data import check_data, read_records
from harness.data.formats import parse_record
from harness.errors import HarnessError
from tests.data.helpers import chat, clean_records, of, write_jsonl


def problems(obj) -> list[str]:
    return parse_record(1, obj if isinstance(obj, str) else json.dumps(obj)).problems


@pytest.mark.parametrize("obj, expect", [
    ("{not json", "not valid JSON"),
    ([1, 2], "not an object"),
    ({"text": "hi"}, "unknown record shape"),
    ({"messages": []}, "non-empty list"),
    ({"messages": [{"role": "bot", "content": "x"}]}, "'messages.0.role': 'bot' is not a role"),
    ({"messages": [{"role": "user", "content": 3}]}, "'messages.0.content': must be a string"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "must end with an assistant message"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, "'messages.0.role': expected user"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}, "'messages.1.role': expected assistant"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "s"}, {"role": "assistant", "content": "b"}]},
     "system message may only come first"),
    ({"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "b"}]}, "empty user message"),
    ({"messages": [{"role": "system", "content": "s"}]}, "no user message"),
    ({"prompt": "q"}, "'completion': missing"),
    ({"prompt": "", "completion": "a"}, "'prompt': empty string"),
    ({"prompt": "q", "completion": 5}, "'completion': must be a string or a list of messages"),
    ({"prompt": "q", "chosen": "Same  answer", "rejected": "Same answer"}, "chosen' and 'rejected' are the same"),
    ({"prompt": "q", "chosen": "a"}, "'rejected': missing"),
    ({"prompt": [{"role": "user", "content": "q"}], "completion": [{"role": "user", "content": "a"}]}, "'completion.0.role': expected assistant"),
])
def test_malformed_records_name_the_field(obj, expect):
    found = problems(obj)
    assert any(expect in p for p in found), found


@pytest.mark.parametrize("obj, kind", [
    (chat("q", "a", system="s"), "chat"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
                   {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]}, "chat"),
    ({"prompt": "q", "completion": "a"}, "prompt_completion"),
    ({"prompt": [{"role": "user", "content": "q"}], "completion": [{"role": "assistant", "content": "a"}]}, "prompt_completion"),
    ({"prompt": "q", "chosen": "good", "rejected": "bad"}, "preference"),
    ({"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
      "chosen": [{"role": "assistant", "content": "good"}], "rejected": [{"role": "assistant", "content": "bad"}]}, "preference"),
])
def test_valid_shapes(obj, kind):
    rec = parse_record(1, json.dumps(obj))
    assert rec.ok, rec.problems
    assert rec.kind == kind and rec.prompt.startswith("q") and rec.answer in ("a", "a2", "good")


text = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=30).filter(lambda s: s.strip())


@st.composite
def valid_chats(draw):
    turns = draw(st.integers(1, 3))
    msgs = [{"role": "system", "content": draw(text)}] if draw(st.booleans()) else []
    for _ in range(turns):
        msgs += [{"role": "user", "content": draw(text)}, {"role": "assistant", "content": draw(text)}]
    return {"messages": msgs, **draw(st.dictionaries(st.sampled_from(["id", "meta", "source"]), st.integers(), max_size=2))}


@given(valid_chats())
@settings(max_examples=150)
def test_generated_valid_chats_pass(obj):
    rec = parse_record(1, json.dumps(obj))
    assert rec.ok, rec.problems
    assert rec.answer == obj["messages"][-1]["content"]


@given(valid_chats(), st.data())
@settings(max_examples=150)
def test_generated_broken_chats_fail(obj, data):
    msgs = obj["messages"]
    how = data.draw(st.sampled_from(["drop_last", "bad_role", "empty", "swap", "not_str"]))
    i = data.draw(st.integers(0, len(msgs) - 1))
    if how == "drop_last":
        msgs.pop()
    elif how == "bad_role":
        msgs[i]["role"] = data.draw(st.text(max_size=8).filter(lambda r: r not in ("system", "user", "assistant")))
    elif how == "empty":
        msgs[i]["content"] = data.draw(st.sampled_from(["", " ", "\n\t"]))
    elif how == "swap":
        body = [m for m in msgs if m["role"] != "system"]
        body[0]["role"] = "assistant"
    else:
        msgs[i]["content"] = data.draw(st.one_of(st.none(), st.integers(), st.lists(st.integers(), max_size=2)))
    assert parse_record(1, json.dumps(obj)).problems


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["messages", "prompt", "completion", "chosen", "rejected", "role", "content", "x"]), inner, max_size=4),
    max_leaves=12,
)


@given(json_values)
@settings(max_examples=300)
def test_random_json_never_crashes_and_is_either_valid_or_explained(value):
    rec = parse_record(7, json.dumps(value))
    assert all(isinstance(p, str) and p for p in rec.problems)
    if rec.ok:  # accepted records really have the texts the checks need
        assert rec.kind and rec.prompt.strip() and rec.answer.strip()


def test_file_level_findings_carry_file_and_line(tmp_path):
    recs = clean_records(5)
    recs[2] = {"messages": [{"role": "user", "content": "only a question"}]}
    path = write_jsonl(tmp_path / "d.jsonl", [*recs[:3], "", "{broken", *recs[3:]])
    report = check_data(path)
    errors = of(report, "format", "error")
    assert [f["locations"] for f in errors] == [[f"{path}:3"], [f"{path}:5"]]
    assert not report.ok and report.summary["malformed"] == 2 and report.summary["records"] == 6


def test_family_mismatch_and_long_fields(tmp_path):
    recs = clean_records(6) + [{"prompt": "q", "chosen": "a", "rejected": "b"}]
    recs[0]["messages"][1]["content"] = "Ticket: " + "word " * 3000
    path = write_jsonl(tmp_path / "d.jsonl", recs)
    report = check_data(path)
    assert report.format == "sft"
    assert any("a dpo record (preference) in a sft file" in f["message"] and f["locations"] == [f"{path}:7"] for f in of(report, "format", "error"))
    long = of(report, "format", "warning")
    assert long and long[0]["locations"] == [f"{path}:1"]
    assert check_data(path, fmt="dpo").summary["malformed"] == 6
    with pytest.raises(HarnessError, match="unknown format"):
        check_data(path, fmt="rlhf")


def test_missing_file_and_empty_file(tmp_path):
    with pytest.raises(HarnessError, match="no such file"):
        read_records(tmp_path / "nope.jsonl")
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n\n")
    assert not check_data(empty).ok

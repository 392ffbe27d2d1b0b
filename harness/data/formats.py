"""Reading training data (JSONL, Parquet, CSV, JSON: `harness.data.tables`) into records, and validating each record's shape.

Three shapes are accepted, the ones TRL trainers take:

- chat: `{"messages": [...]}`, an optional system message first, then user and assistant
  turns alternating, starting with user and ending with assistant;
- prompt/completion: `{"prompt": ..., "completion": ...}`;
- preference (DPO): `{"prompt": ..., "chosen": ..., "rejected": ...}` with chosen != rejected.

A field is a string or, in the conversational variants, a list of messages. The first two
shapes form the `sft` family and the third the `dpo` family. Every problem names the field and
the fix; the caller adds file:line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.files import is_file, parse_json

ROLES = ("system", "user", "assistant")
FAMILIES = {"chat": "sft", "prompt_completion": "sft", "preference": "dpo"}
SHAPES = "{messages}, {prompt, completion} or {prompt, chosen, rejected}"


@dataclass
class Record:
    """One line of a training file, with the texts the checks look at."""

    line: int
    text: str  # the raw line, copied verbatim by splits
    data: dict | None = None
    kind: str | None = None  # chat | prompt_completion | preference
    system: str = ""
    prompt: str = ""  # everything the user side says, turns joined by newlines
    answers: list[str] = field(default_factory=list)  # assistant turns, the completion, or [chosen]
    rejected: str | None = None
    problems: list[str] = field(default_factory=list)  # malformed: blocks training
    long_fields: list[str] = field(default_factory=list)

    @property
    def family(self) -> str | None:
        return FAMILIES.get(self.kind or "")

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def answer(self) -> str:
        """The final assistant answer (the chosen one for preference pairs)."""
        return self.answers[-1] if self.answers else ""

    @property
    def slices(self) -> dict:
        s = (self.data or {}).get("slices")
        return s if isinstance(s, dict) else {}

    def texts(self) -> list[str]:
        """Every text of the record, for the scans over all content (PII, dates)."""
        return [t for t in (self.system, self.prompt, *self.answers, self.rejected or "") if t]


def _messages(value: Any, where: str, rec: Record, *, first: str, last: str | None, max_chars: int) -> list[tuple[str, str]]:
    """Validate a message list; returns (role, content) pairs of the valid messages."""
    if not isinstance(value, list) or not value:
        rec.problems.append(f"field '{where}': must be a non-empty list of {{role, content}} messages")
        return []
    out: list[tuple[str, str]] = []
    for i, m in enumerate(value):
        at = f"{where}.{i}"
        if not isinstance(m, dict):
            rec.problems.append(f"field '{at}': must be an object with role and content")
            continue
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            rec.problems.append(f"field '{at}.role': {role!r} is not a role: use system, user or assistant")
            continue
        if not isinstance(content, str):
            rec.problems.append(f"field '{at}.content': must be a string (got {type(content).__name__})")
            continue
        if not content.strip():
            rec.problems.append(f"field '{at}.content': empty {role} message: write it or drop the turn")
        elif len(content) > max_chars:
            rec.long_fields.append(f"{at}.content ({len(content):,} chars)")
        out.append((role, content))
    roles = [r for r, _ in out]
    if len(out) != len(value):
        return out  # order is only meaningful once every message is well-formed
    body = roles[1:] if roles and roles[0] == "system" else roles
    if "system" in body:
        rec.problems.append(f"field '{where}': a system message may only come first (found at position {roles.index('system', 1)})")
        return out
    expect = first
    for i, r in enumerate(body):
        if r != expect:
            pos = i + (len(roles) - len(body))
            rec.problems.append(f"field '{where}.{pos}.role': expected {expect} (turns alternate user/assistant, starting with {first}), got {r}")
            return out
        expect = "assistant" if r == "user" else "user"
    if not body:
        rec.problems.append(f"field '{where}': no {first} message")
    elif last and body[-1] != last:
        rec.problems.append(f"field '{where}': must end with an {last} message (the answer trained on)")
    return out


def _text_field(rec: Record, data: dict, key: str, *, conversational_role: str, max_chars: int) -> tuple[str, str]:
    """(system, text) of a prompt/completion/chosen/rejected field: a string or a message list."""
    if key not in data:
        rec.problems.append(f"field '{key}': missing (add it)")
        return "", ""
    value = data[key]
    if isinstance(value, str):
        if not value.strip():
            rec.problems.append(f"field '{key}': empty string: write the text or drop the record")
        elif len(value) > max_chars:
            rec.long_fields.append(f"{key} ({len(value):,} chars)")
        return "", value
    if isinstance(value, list):
        if conversational_role == "user":
            msgs = _messages(value, key, rec, first="user", last="user", max_chars=max_chars)
        else:
            msgs = _messages(value, key, rec, first="assistant", last="assistant", max_chars=max_chars)
        system = "\n".join(c for r, c in msgs if r == "system")
        return system, "\n".join(c for r, c in msgs if r == conversational_role)
    rec.problems.append(f"field '{key}': must be a string or a list of messages (got {type(value).__name__})")
    return "", ""


def parse_record(line: int, text: str, max_chars: int = 8000) -> Record:
    """Parse and validate one JSONL line."""
    rec = Record(line, text)
    data, problem = parse_json(text)
    if problem:
        rec.problems.append(f"{problem}: one JSON object per line")
        return rec
    if not isinstance(data, dict):
        rec.problems.append(f"a JSON {type(data).__name__}, not an object: each line is one record {SHAPES}")
        return rec
    rec.data = data
    if "messages" in data:
        rec.kind = "chat"
        msgs = _messages(data["messages"], "messages", rec, first="user", last="assistant", max_chars=max_chars)
        rec.system = "\n".join(c for r, c in msgs if r == "system")
        rec.prompt = "\n".join(c for r, c in msgs if r == "user")
        rec.answers = [c for r, c in msgs if r == "assistant"]
    elif "chosen" in data or "rejected" in data:
        rec.kind = "preference"
        rec.system, rec.prompt = _text_field(rec, data, "prompt", conversational_role="user", max_chars=max_chars)
        _, chosen = _text_field(rec, data, "chosen", conversational_role="assistant", max_chars=max_chars)
        _, rejected = _text_field(rec, data, "rejected", conversational_role="assistant", max_chars=max_chars)
        rec.answers, rec.rejected = [chosen], rejected
        if chosen.strip() and " ".join(chosen.split()) == " ".join(rejected.split()):
            rec.problems.append("fields 'chosen' and 'rejected' are the same text: a preference pair needs two different answers")
    elif "prompt" in data or "completion" in data:
        rec.kind = "prompt_completion"
        rec.system, rec.prompt = _text_field(rec, data, "prompt", conversational_role="user", max_chars=max_chars)
        _, completion = _text_field(rec, data, "completion", conversational_role="assistant", max_chars=max_chars)
        rec.answers = [completion]
    else:
        keys = ", ".join(sorted(data)) or "none"
        rec.problems.append(f"unknown record shape (keys: {keys}): use {SHAPES}")
    return rec


def read_records(path: str | Path, max_chars: int = 8000, data_format=None) -> list[Record]:
    """Every row of a JSONL, Parquet, CSV, TSV or JSON file as a validated `Record` (malformed ones
    included), in the harness's shapes after `data_format` (`harness.data.tables`) maps it."""
    import json

    from harness.data.tables import apply_format, iter_rows

    p = Path(path)
    if not is_file(p):
        raise HarnessError(f"{p}: no such file: give a JSONL, Parquet, CSV or JSON file of training records")
    records = []
    for n, text, value, problem in iter_rows(p):
        if problem and not problem.startswith("not valid JSON"):
            rec = Record(n, text)
            rec.problems.append(problem)
            records.append(rec)
            continue
        if data_format is not None and not problem:
            value, problem = apply_format(value, data_format)
            if problem:
                rec = Record(n, text, data=value if isinstance(value, dict) else None)
                rec.problems.append(problem)
                records.append(rec)
                continue
            text = json.dumps(value, ensure_ascii=False)
        # parse_record parses the text again, so a record is the same read from a file or given as text
        records.append(parse_record(n, text, max_chars))
    return records


def resolve_family(records: list[Record], fmt: str | None) -> str:
    """The file's family: `fmt` when given, else the majority of well-shaped records (sft on a tie)."""
    if fmt is not None:
        if fmt not in ("sft", "dpo"):
            raise HarnessError(f"unknown format {fmt!r}: use sft or dpo")
        return fmt
    fams = [r.family for r in records if r.family]
    return "dpo" if fams.count("dpo") > fams.count("sft") else "sft"

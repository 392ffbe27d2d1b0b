"""Rows of a data file in the formats Hugging Face users keep data in, and the shapes they write.

JSON Lines (`.jsonl`, or a `.json` file of one object per line) are read line by line, as
before: each row's location is its line and its text is the line itself. Parquet, CSV, TSV and
JSON arrays are read through `datasets` (its Arrow readers, no cache left behind); a row's
location is its line in a CSV/TSV file (the header is line 1) and its row number, from 1, in
Parquet and JSON. In those tables a column named with dots (`input.request`) becomes a nested
field, and a null (an empty CSV cell, a key Parquet's schema added to a struct) is a missing field.

`data_format` maps other shapes onto the harness's own (`harness.data.formats`):
- `sharegpt`: `{"conversations": [{"from": "human"|"gpt"|"system", "value": ...}], "system"?}`
  becomes `{"messages": [...]}`;
- `alpaca`: `{"instruction", "input"?, "output", "system"?}` becomes `{"prompt", "completion"}`
  (the input after the instruction, a blank line between);
- a mapping `{field: column}` renames columns (`{prompt: question, completion: answer}`), dotted
  on either side for nested fields; unmapped columns are kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.files import iter_jsonl

TABLES = {".parquet": "parquet", ".csv": "csv", ".tsv": "csv", ".json": "json"}
DATA_SUFFIXES = (".jsonl", ".parquet", ".csv", ".tsv", ".json")
SHAPES = ("sharegpt", "alpaca")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant",
                  "bing": "assistant", "bard": "assistant", "model": "assistant", "system": "system"}

Row = tuple[int, str, Any, "str | None"]  # (location, text, value, problem), as iter_jsonl yields


def is_table(path: str | Path) -> bool:
    """Read through `datasets` (not line by line)."""
    p = Path(path)
    kind = TABLES.get(p.suffix.lower())
    return kind is not None and not (kind == "json" and _json_lines(p))


def _json_lines(p: Path) -> bool:
    """A `.json` file holding one object per line (as `datasets` writes them), not one array."""
    try:
        with p.open("rb") as f:
            head = f.read(4096).lstrip()
    except OSError:
        return True  # iter_jsonl reports why it cannot be read
    return not head.startswith(b"[")


def _load_table(p: Path) -> list[dict]:
    import tempfile

    import datasets

    kind = TABLES[p.suffix.lower()]
    extra: dict = {}
    if kind == "csv":  # every column as text: a CSV has no types, and "0" is an answer, not a number
        import csv

        delimiter = "\t" if p.suffix.lower() == ".tsv" else ","
        with p.open(newline="", encoding="utf-8", errors="replace") as f:
            header = next(csv.reader(f, delimiter=delimiter), [])
        extra = {"delimiter": delimiter, "features": datasets.Features({c: datasets.Value("string") for c in header})}
    if kind == "json":
        extra["field"] = None
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            ds = datasets.load_dataset(kind, data_files=str(p), split="train", cache_dir=tmp, keep_in_memory=True, **extra)
        except Exception as e:  # datasets wraps the reader's own error (ArrowInvalid, ParserError, ...)
            cause = e.__cause__ or e
            first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
            raise ConfigError(f"{p}: cannot be read as {p.suffix.lstrip('.').upper()}: {first}") from None
        return ds.to_list()


def _clean(value):
    """Nulls dropped (a missing field), recursively; Arrow's values kept as JSON ones."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _nest(row: dict) -> dict:
    """`{"input.request": x}` -> `{"input": {"request": x}}`."""
    out: dict = {}
    for key, value in row.items():
        parts = str(key).split(".")
        at = out
        for part in parts[:-1]:
            at = at.setdefault(part, {})
            if not isinstance(at, dict):
                break
        else:
            at[parts[-1]] = value
    return out


def iter_rows(path: str | Path) -> Iterator[Row]:
    """(location, text, value, problem) for every row of a JSONL, Parquet, CSV, TSV or JSON file."""
    p = Path(path)
    if not is_table(p):
        yield from iter_jsonl(p)
        return
    offset = 2 if TABLES[p.suffix.lower()] == "csv" else 1  # CSV: the header is line 1
    for i, row in enumerate(_load_table(p)):
        value = _nest(_clean(row))
        yield i + offset, json.dumps(value, ensure_ascii=False), value, None


# ---- shapes ------------------------------------------------------------------------------------
def check_data_format(value) -> str | None:
    """Why `value` is not a data_format, or None."""
    if value is None or value in SHAPES:
        return None
    if isinstance(value, dict) and value and all(isinstance(k, str) and isinstance(v, str) and k and v
                                                 for k, v in value.items()):
        return None
    return (f"{value!r} is not a data format: use sharegpt, alpaca, or a mapping of field to column "
            "such as {prompt: question, completion: answer}")


def parse_data_format(text: str | None):
    """A `--data-format` argument: a shape's name or a JSON mapping."""
    if text is None or text in SHAPES:
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    if (why := check_data_format(value)) is not None:
        raise ConfigError(f"--data-format: {why}")
    return value


def _get(obj: dict, dotted: str):
    at: Any = obj
    for part in dotted.split("."):
        if not isinstance(at, dict) or part not in at:
            return None
        at = at[part]
    return at


def _pop(obj: dict, dotted: str):
    parts = dotted.split(".")
    at: Any = obj
    for part in parts[:-1]:
        at = at.get(part) if isinstance(at, dict) else None
    return at.pop(parts[-1], None) if isinstance(at, dict) else None


def _put(obj: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    at = obj
    for part in parts[:-1]:
        at = at.setdefault(part, {})
    at[parts[-1]] = value


def _sharegpt(obj: dict) -> tuple[dict, str | None]:
    turns = obj.get("conversations", obj.get("messages"))
    if isinstance(turns, str):  # a CSV cell
        try:
            turns = json.loads(turns)
        except json.JSONDecodeError:
            pass
    if not isinstance(turns, list) or not turns:
        return obj, "field 'conversations': missing or not a list of {from, value} turns (ShareGPT)"
    messages = []
    if isinstance(obj.get("system"), str) and obj["system"].strip():
        messages.append({"role": "system", "content": obj["system"]})
    for i, t in enumerate(turns):
        if not isinstance(t, dict):
            return obj, f"field 'conversations.{i}': must be an object with from and value"
        who = t.get("from", t.get("role"))
        role = SHAREGPT_ROLES.get(str(who).lower()) if who is not None else None
        if role is None:
            return obj, (f"field 'conversations.{i}.from': {who!r} is not a ShareGPT speaker: use human, gpt or system")
        messages.append({"role": role, "content": t.get("value", t.get("content"))})
    rest = {k: v for k, v in obj.items() if k not in ("conversations", "messages", "system")}
    return {"messages": messages, **rest}, None


def _alpaca(obj: dict) -> tuple[dict, str | None]:
    for key in ("instruction", "output"):
        if not isinstance(obj.get(key), str):
            return obj, f"field '{key}': missing (Alpaca records have instruction, optional input, and output)"
    prompt = obj["instruction"]
    if isinstance(obj.get("input"), str) and obj["input"].strip():
        prompt = f"{prompt}\n\n{obj['input']}"
    rest = {k: v for k, v in obj.items() if k not in ("instruction", "input", "output", "system")}
    if isinstance(obj.get("system"), str) and obj["system"].strip():
        return {"prompt": [{"role": "system", "content": obj["system"]}, {"role": "user", "content": prompt}],
                "completion": obj["output"], **rest}, None
    return {"prompt": prompt, "completion": obj["output"], **rest}, None


def apply_format(obj, data_format) -> tuple[Any, str | None]:
    """(the record in the harness's shape, problem or None)."""
    if data_format is None or not isinstance(obj, dict):
        return obj, None
    if data_format == "sharegpt":
        return _sharegpt(obj)
    if data_format == "alpaca":
        return _alpaca(obj)
    out = json.loads(json.dumps(obj))  # a deep copy of JSON values
    missing = [src for src in data_format.values() if _get(obj, src) is None]
    if missing:
        have = ", ".join(sorted(obj)) or "none"
        return obj, (f"column {missing[0]!r} missing (data_format maps it to {next(k for k, v in data_format.items() if v == missing[0])!r}; "
                     f"columns here: {have})")
    values = {field: _get(obj, src) for field, src in data_format.items()}
    for src in data_format.values():
        _pop(out, src)
    for field, value in values.items():
        _put(out, field, value)
    return out, None

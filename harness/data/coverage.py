"""Coverage: refusal examples, label balance of JSON answers, slice balance of records.

Fine-tuning only on compliant answers erodes a model's refusals, so zero refusal examples is a
warning when a gated safety suite is in scope. Label balance counts the enum-like fields of JSON
answers (the schema's `enum` properties when a schema is given).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from harness.data.consistency import answer_style
from harness.data.formats import Record
from harness.data.report import finding
from harness.evals.checks.text import parse_json

MAX_LABELS = 12  # more distinct values than this and a field is free text, not a label
SKEW = 10  # most common label at least this many times the least common: noted


def check_refusals(records: Sequence[Record], loc: Callable[[Record], str], gated: Sequence[str]) -> tuple[list[dict], dict]:
    refusals = [r for r in records if r.answer and answer_style(r.answer) == "refusal"]
    summary = {"refusal_examples": len(refusals)}
    if refusals:
        return [], summary
    if gated:
        msg = (f"no refusal examples while the gated suite(s) {', '.join(gated)} are in scope: training only on compliant "
               "answers tends to erode refusals; add examples that decline harmful requests")
        return [finding("refusals", "warning", msg, gated_suites=list(gated))], summary
    return [finding("refusals", "info", "no refusal examples in the data")], summary


def _enum_fields(schema: dict | None) -> dict[str, list]:
    props = (schema or {}).get("properties") or {}
    return {k: list(v["enum"]) for k, v in props.items() if isinstance(v, dict) and isinstance(v.get("enum"), list)}


def check_labels(records: Sequence[Record], loc: Callable[[Record], str], schema: dict | None = None) -> tuple[list[dict], dict]:
    objects = []
    for r in records:
        value, err = parse_json(r.answer) if r.answer else (None, "empty")
        if err is None and isinstance(value, dict):
            objects.append(value)
    enums = _enum_fields(schema)
    if enums:
        fields = list(enums)
    else:  # without a schema: string fields present in most answers with few distinct, short values
        present = Counter(k for o in objects for k, v in o.items() if isinstance(v, (str, bool)))
        fields = []
        for k, n in present.items():
            values = {o[k] for o in objects if isinstance(o.get(k), (str, bool))}
            if n >= 0.8 * len(objects) and len(values) <= MAX_LABELS and all(len(str(v)) <= 40 for v in values) and n > len(values):
                fields.append(k)
    balance, findings = {}, []
    for k in fields:
        counts = Counter(str(o[k]) for o in objects if isinstance(o.get(k), (str, bool, int, float)))
        for missing in (v for v in enums.get(k, []) if str(v) not in counts):
            counts[str(missing)] = 0
        balance[k] = dict(counts.most_common())
        zero = [v for v, n in counts.items() if n == 0]
        if zero:
            findings.append(finding("label_balance", "warning", f"label {k}: no examples of {', '.join(map(repr, zero))}: "
                                    "add some, or the model never learns them", field=k, counts=balance[k]))
        elif len(counts) > 1 and sum(counts.values()) >= 50:
            most, least = counts.most_common()[0], counts.most_common()[-1]
            if most[1] >= SKEW * least[1]:
                findings.append(finding("label_balance", "info", f"label {k} is skewed: {most[0]!r} {most[1]} vs {least[0]!r} {least[1]}",
                                        field=k, counts=balance[k]))
    slices: dict[str, Counter] = {}
    for r in records:
        for k, v in r.slices.items():
            slices.setdefault(k, Counter())[str(v)] += 1
    return findings, {"label_balance": balance, "slices": {k: dict(c.most_common()) for k, c in slices.items()}}

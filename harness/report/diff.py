"""Word-level differences between a baseline and a candidate output, for side-by-side display.

Each side is a list of segments {"op": "eq" | "del" | "ins", "text"}; the template escapes the
text and wraps changed segments in <del>/<ins>.
"""

from __future__ import annotations

import difflib
import re

TOKEN = re.compile(r"\s+|\w+|[^\w\s]")
MAX_CHARS = 4000  # longer outputs are cut (the full text stays in outputs.jsonl)


def _cut(text: str) -> tuple[str, bool]:
    return (text[:MAX_CHARS], True) if len(text) > MAX_CHARS else (text, False)


def side_by_side(before: str | None, after: str | None) -> dict:
    """{"before": segments, "after": segments, "truncated": bool, "same": bool}."""
    a, cut_a = _cut(before or "")
    b, cut_b = _cut(after or "")
    ta, tb = TOKEN.findall(a), TOKEN.findall(b)
    left: list[dict] = []
    right: list[dict] = []
    matcher = difflib.SequenceMatcher(None, ta, tb, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            _add(left, "eq", "".join(ta[i1:i2]))
            _add(right, "eq", "".join(tb[j1:j2]))
            continue
        if i2 > i1:
            _add(left, "del", "".join(ta[i1:i2]))
        if j2 > j1:
            _add(right, "ins", "".join(tb[j1:j2]))
    return {"before": _join_changes(left), "after": _join_changes(right), "truncated": cut_a or cut_b, "same": a == b}


def _join_changes(segments: list[dict]) -> list[dict]:
    """Absorb a lone space between two changed runs, so "a b" reads as one change, not two."""
    out: list[dict] = []
    for i, seg in enumerate(segments):
        between = 0 < i < len(segments) - 1 and seg["op"] == "eq" and not seg["text"].strip() \
            and segments[i - 1]["op"] != "eq" and segments[i + 1]["op"] == segments[i - 1]["op"]
        _add(out, segments[i - 1]["op"] if between else seg["op"], seg["text"])
    return out


def _add(segments: list[dict], op: str, text: str) -> None:
    if not text:
        return
    if segments and segments[-1]["op"] == op:
        segments[-1]["text"] += text
    else:
        segments.append({"op": op, "text": text})

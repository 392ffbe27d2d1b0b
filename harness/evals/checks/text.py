"""Text normalisation and JSON extraction shared by the checks."""

from __future__ import annotations

import json
import re
import unicodedata

_FENCE = re.compile(r"^\s*```(?:json|JSON)?\s*\n?(.*?)\n?```\s*$", re.S)


def normalize(text, lowercase: bool = True, strip_punct: bool = False, collapse_space: bool = True) -> str:
    s = unicodedata.normalize("NFKC", str(text))
    if lowercase:
        s = s.casefold()
    if strip_punct:
        s = re.sub(r"[^\w\s]", " ", s)
    if collapse_space:
        s = " ".join(s.split())
    return s.strip()


def parse_json(output: str, allow_fence: bool = True):
    """(value, error): the output parsed as JSON, optionally inside one ```json fence."""
    text = output.strip()
    if allow_fence:
        m = _FENCE.match(text)
        if m:
            text = m.group(1).strip()
    try:
        return json.loads(text), None
    except ValueError as e:
        return None, f"not JSON: {e.msg} at char {e.pos}"


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def numbers(text: str) -> list[float]:
    out = []
    for m in _NUMBER.findall(text):
        try:
            out.append(float(m.replace(",", "")))
        except ValueError:
            continue
    return out


def words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+(?:['’][^\W_]+)*", text)


def sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+|\n+", text.strip())
    return [p for p in parts if re.search(r"\w", p)]

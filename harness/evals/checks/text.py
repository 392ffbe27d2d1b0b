"""Text normalisation and JSON extraction shared by the checks."""

from __future__ import annotations

import json
import re
import unicodedata
from decimal import Decimal, InvalidOperation

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


# ---- numbers by value (grounding, numeric) ---------------------------------------------------
CURRENCY = re.compile(r"[$€£¥₹₩₽¢]|\b(?:USD|EUR|GBP|CHF|JPY|CNY|INR|CAD|AUD|NZD|SEK|NOK|DKK|PLN|CZK|HUF|BRL|MXN|ZAR)\b", re.I)
WRITTEN_NUMBER = re.compile(
    r"(?<![\w.,'])[-−+]?(?:\d{1,3}(?:(?:,\d{3})+|(?:\.\d{3})+|(?:[ \u00a0\u202f]\d{3})+|(?:'\d{3})+)(?:[.,]\d+)?|\d+(?:[.,]\d+)?)(?![\w]|[.,']\d)")


def number_readings(token: str) -> set[Decimal]:
    """What a written number can mean: `1,250.00` -> {1250}; `1.250` -> {1250, 1.25} (German or English)."""
    t = token.replace("−", "-").replace("\u00a0", " ").replace("\u202f", " ")
    sign, t = ("-" if t[:1] == "-" else ""), t.lstrip("+-")
    readings = []
    if " " in t or "'" in t:
        grouped = t.replace(" ", "").replace("'", "")
        readings.append(grouped.replace(",", "."))
    elif "," in t and "." in t:
        readings.append(t.replace(",", "") if t.rfind(".") > t.rfind(",") else t.replace(".", "").replace(",", "."))
    elif "," in t or "." in t:
        sep = "," if "," in t else "."
        head, _, tail = t.rpartition(sep)
        if t.count(sep) > 1:
            readings.append(t.replace(sep, ""))
        else:
            readings.append(f"{head}.{tail}")  # a decimal point or comma
            if len(tail) == 3:
                readings.append(head + tail)  # or a thousands separator
    else:
        readings.append(t)
    out = set()
    for r in readings:
        try:
            out.add(Decimal(sign + r).normalize())
        except InvalidOperation:
            pass
    return out


def written_numbers(text: str) -> list[set[Decimal]]:
    """Every number written in `text`, each as the set of values it can mean."""
    return [number_readings(m.group()) for m in WRITTEN_NUMBER.finditer(str(text))]




def value_readings(value) -> set[Decimal]:
    """What a value can mean as a number: a JSON number is itself; a string is read as a written
    number, currency signs and codes aside (`€1.250,00` -> {1250}); anything else, nothing."""
    if isinstance(value, bool) or value is None:
        return set()
    if isinstance(value, (int, float)):
        return {Decimal(repr(value) if isinstance(value, float) else str(value)).normalize()}
    bare = CURRENCY.sub(" ", str(value)).strip()
    return number_readings(bare) if bare and WRITTEN_NUMBER.fullmatch(bare) else set()

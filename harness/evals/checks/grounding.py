"""Source faithfulness: extracted values and summary n-grams must come from the source text."""

from __future__ import annotations

from harness.evals.checks.registry import CheckResult, Sample, check
from harness.evals.checks.text import normalize, parse_json, words


def _source(sample: Sample, source_field: str) -> str:
    inp = sample.case.input
    return str(inp.get(source_field, "")) if isinstance(inp, dict) else str(inp)


@check("grounded_fields")
def grounded_fields(fields: list[str], source_field: str = "text", allow_fence: bool = True):
    """Every extracted value of `fields` in the JSON output appears in the source text
    (case-, space- and punctuation-insensitive)."""

    def score(sample: Sample) -> CheckResult:
        value, err = parse_json(sample.output or "", allow_fence)
        if err or not isinstance(value, dict):
            return CheckResult(False, reason=err or "output is not a JSON object")
        src = normalize(_source(sample, source_field), strip_punct=True)
        results = {}
        for f in fields:
            v = value.get(f)
            vals = v if isinstance(v, list) else [v]
            results[f] = v is not None and all(normalize(x, strip_punct=True) in src for x in vals if x not in ("", None))
        bad = [f for f, ok in results.items() if not ok]
        return CheckResult(not bad, sum(results.values()) / len(fields), f"not in source: {', '.join(bad)}" if bad else "", results)

    return score


@check("grounded_ngrams")
def grounded_ngrams(source_field: str = "text", json_field: str | None = None, n: int = 2, min_overlap: float = 0.5):
    """At least `min_overlap` of the output's word n-grams occur in the source (summary
    faithfulness); with `json_field`, the text is that field of a JSON output."""

    def grams(text: str) -> list[tuple[str, ...]]:
        w = [x.lower() for x in words(text)]
        return [tuple(w[i : i + n]) for i in range(len(w) - n + 1)] or [tuple(w)]

    def score(sample: Sample) -> CheckResult:
        text = sample.output or ""
        if json_field:
            value, err = parse_json(text)
            if err or not isinstance(value, dict) or not isinstance(value.get(json_field), str):
                return CheckResult(False, 0.0, reason=f"no string field {json_field!r} in a JSON output")
            text = value[json_field]
        out = grams(text)
        if not out or out == [()]:
            return CheckResult(False, 0.0, reason="empty output")
        src = set(grams(_source(sample, source_field)))
        frac = sum(g in src for g in out) / len(out)
        return CheckResult(frac >= min_overlap, frac, "" if frac >= min_overlap else f"{frac:.0%} of {n}-grams in source")

    return score

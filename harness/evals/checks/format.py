"""Format and task-success checks: JSON validity and schema, field accuracy, matching."""

from __future__ import annotations

import re
from pathlib import Path

from harness.evals.checks.registry import CheckResult, Sample, check, reads
from harness.evals.checks.text import normalize, numbers, parse_json, value_readings
from harness.files import config_path, load_json


def _expected(sample: Sample, field: str):
    exp = sample.case.expected
    if isinstance(exp, dict):
        if field not in exp:
            raise KeyError(f"case {sample.case.id}: expected has no field {field!r}")
        return exp[field]
    return exp


@check("json_valid")
def json_valid(allow_fence: bool = True, require_object: bool = True):
    """The output parses as JSON (optionally inside one ```json fence), an object by default."""

    def score(sample: Sample) -> CheckResult:
        value, err = parse_json(sample.output or "", allow_fence)
        if err:
            return CheckResult(False, reason=err)
        if require_object and not isinstance(value, dict):
            return CheckResult(False, reason=f"JSON is a {type(value).__name__}, not an object")
        return CheckResult(True)

    return score


@check("json_schema")
def json_schema(schema: str | dict, suite_dir: Path | None = None, allow_fence: bool = True):
    """The output is JSON valid against a JSON Schema (Draft 2020-12; a file in the suite folder)."""
    from jsonschema import Draft202012Validator

    if isinstance(schema, str):
        path = config_path(Path(suite_dir or "."), schema)
        if not path.is_file():
            raise ValueError(f"schema file {schema!r} not found in {suite_dir}")
        schema = load_json(path)
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)

    def score(sample: Sample) -> CheckResult:
        value, err = parse_json(sample.output or "", allow_fence)
        if err:
            return CheckResult(False, reason=err)
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            where = "/".join(str(p) for p in e.path) or "(root)"
            more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
            return CheckResult(False, reason=f"{where}: {e.message}{more}")
        return CheckResult(True)

    return score


@check("field_match")
def field_match(fields: list[str], lowercase: bool = True, strip_punct: bool = False, allow_fence: bool = True):
    """Per-field accuracy of a JSON output against `expected`; passes when every field matches."""
    if not fields:
        raise ValueError("field_match needs a non-empty `fields` list")

    def score(sample: Sample) -> CheckResult:
        value, err = parse_json(sample.output or "", allow_fence)
        results = {}
        for f in fields:
            want = _expected(sample, f)
            got = value.get(f) if isinstance(value, dict) else None
            results[f] = got is not None and normalize(got, lowercase, strip_punct) == normalize(want, lowercase, strip_punct)
        wrong = [f"{f}" for f, ok in results.items() if not ok]
        reason = err or (f"wrong: {', '.join(wrong)}" if wrong else "")
        return CheckResult(all(results.values()), sum(results.values()) / len(fields), reason, results)

    return reads(score, expected=fields)


@check("exact_match")
def exact_match(field: str = "answer", lowercase: bool = True, strip_punct: bool = True):
    """The whole output equals the expected value after normalisation."""

    def score(sample: Sample) -> CheckResult:
        want = normalize(_expected(sample, field), lowercase, strip_punct)
        got = normalize(sample.output or "", lowercase, strip_punct)
        return CheckResult(got == want, reason="" if got == want else f"expected {want!r}, got {got[:80]!r}")

    return reads(score, expected=[field])


@check("numeric")
def numeric(field: str = "answer", json_field: str | None = None, tolerance: float = 1e-6, position: str = "last"):
    """The number in the output equals `expected[field]`. A JSON object answer is read at its
    `json_field` (default: `field`), never guessed from the text; a free-text answer's last (or
    `position: first`, or `any`) number is taken. Numbers are read by value (`1,250.00`, `€12.50`)."""
    if position not in ("last", "first", "any"):
        raise ValueError("position must be last, first or any")

    def value_of(x) -> set[float]:
        return {float(v) for v in value_readings(x)}

    def score(sample: Sample) -> CheckResult:
        raw = _expected(sample, field)
        wants = value_of(raw)
        if not wants:
            raise ValueError(f"case {sample.case.id}: expected.{field} is not a number ({raw!r})")
        want = min(wants)
        parsed, err = parse_json(sample.output or "")
        if json_field or (err is None and isinstance(parsed, dict)):
            key = json_field or field
            if err or not isinstance(parsed, dict):
                return CheckResult(False, reason=f"not a JSON object with field {key!r}")
            if key not in parsed:
                return CheckResult(False, reason=f"JSON answer has no field {key!r} (set json_field to the key holding the number)")
            candidates, shown = sorted(value_of(parsed[key])), repr(parsed[key])
            if not candidates:
                return CheckResult(False, reason=f"field {key!r} is not a number: {shown}")
        else:
            found = numbers(sample.output or "")
            if not found:
                return CheckResult(False, reason="no number in the output")
            candidates = found if position == "any" else [found[-1] if position == "last" else found[0]]
            shown = f"{candidates[-1]:g}"
        ok = any(abs(x - w) <= tolerance * max(1.0, abs(w)) for x in candidates for w in wants)
        return CheckResult(ok, reason="" if ok else f"expected {want:g}, got {shown}")

    def validate(case) -> None:
        raw = case.expected.get(field) if isinstance(case.expected, dict) else case.expected
        if not value_of(raw):
            raise ValueError(f"field 'expected.{field}': a number (got {raw!r})")

    score.validate = validate
    return reads(score, expected=[field])


@check("regex")
def regex(pattern: str, fullmatch: bool = False, ignore_case: bool = False):
    """The output matches a regular expression (search, or fullmatch)."""
    compiled = re.compile(pattern, re.I if ignore_case else 0)

    def score(sample: Sample) -> CheckResult:
        text = (sample.output or "").strip()
        ok = bool(compiled.fullmatch(text) if fullmatch else compiled.search(text))
        return CheckResult(ok, reason="" if ok else f"no match for /{pattern}/")

    return score


def _values(values, value, field, sample):
    if field:
        v = _expected(sample, field)
        return v if isinstance(v, list) else [v]
    return values if values is not None else [value]


@check("contains")
def contains(value: str | None = None, values: list[str] | None = None, field: str | None = None, mode: str = "all", lowercase: bool = True):
    """The output contains the value(s) (`mode: all` or `any`), literal or from `expected[field]`."""
    if value is None and values is None and field is None:
        raise ValueError("contains needs `value`, `values` or `field`")

    def score(sample: Sample) -> CheckResult:
        text = normalize(sample.output or "", lowercase)
        want = _values(values, value, field, sample)
        hits = [normalize(v, lowercase) in text for v in want]
        ok = all(hits) if mode == "all" else any(hits)
        missing = [v for v, h in zip(want, hits) if not h]
        return CheckResult(ok, reason="" if ok else f"missing: {missing}")

    return reads(score, expected=[field])


@check("not_contains")
def not_contains(value: str | None = None, values: list[str] | None = None, field: str | None = None, lowercase: bool = True):
    """The output contains none of the value(s)."""
    if value is None and values is None and field is None:
        raise ValueError("not_contains needs `value`, `values` or `field`")

    def score(sample: Sample) -> CheckResult:
        text = normalize(sample.output or "", lowercase)
        found = [v for v in _values(values, value, field, sample) if normalize(v, lowercase) in text]
        return CheckResult(not found, reason=f"contains: {found}" if found else "")

    return reads(score, expected=[field])


@check("choice")
def choice(labels: list[str], field: str | None = "answer", lowercase: bool = True):
    """The output is one label of a set (after normalisation) and, with `field`, the expected one."""
    norm = {normalize(l, lowercase, strip_punct=True): l for l in labels}

    def score(sample: Sample) -> CheckResult:
        got = normalize(sample.output or "", lowercase, strip_punct=True)
        if got not in norm:
            return CheckResult(False, reason=f"{got[:40]!r} is not one of {labels}")
        if field is None:
            return CheckResult(True)
        want = normalize(_expected(sample, field), lowercase, strip_punct=True)
        return CheckResult(got == want, reason="" if got == want else f"expected {want!r}, got {got!r}")

    return reads(score, expected=[field])

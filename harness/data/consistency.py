"""Output consistency: answer lengths and verbose outliers, JSON answers against the task's
schema, and mixed styles (JSON vs prose answers, fenced vs bare JSON, record shapes, system
prompts). Refusals are their own style: a JSON task may rightly answer some requests in prose.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.data.formats import Record
from harness.data.report import finding
from harness.errors import HarnessError
from harness.refusal import is_refusal
from harness.evals.checks.text import parse_json
from harness.files import load_json


def answer_style(answer: str) -> str:
    """json | fenced_json | refusal | prose."""
    value, err = parse_json(answer)
    if err is None and isinstance(value, (dict, list)):
        return "fenced_json" if answer.lstrip().startswith("```") else "json"
    return "refusal" if answer.strip() and is_refusal(answer) else "prose"


def length_stats(values: Sequence[int]) -> dict:
    import numpy as np

    a = np.asarray(values, dtype=float)
    q1, p50, q3, p95 = np.percentile(a, [25, 50, 75, 95])
    return {"min": float(a.min()), "p25": float(q1), "p50": float(p50), "p75": float(q3), "p95": float(p95),
            "max": float(a.max()), "mean": float(a.mean()), "outlier_above": float(max(q3 + 3 * (q3 - q1), 4 * p50))}


def check_lengths(records: Sequence[Record], loc: Callable[[Record], str]) -> tuple[list[dict], dict]:
    """Answers far longer than the rest: above Q3 + 3 IQR and above 4x the median."""
    answers = [r for r in records if r.answer]
    if not answers:
        return [], {}
    stats = length_stats([len(r.answer) for r in answers])
    summary = {"answer_chars": stats, "prompt_chars": length_stats([len(r.prompt) for r in records if r.prompt] or [0])}
    if len(answers) < 8:  # quartiles of a handful of answers say nothing
        summary["verbose_answers"] = 0
        return [], summary
    long = [r for r in answers if len(r.answer) > stats["outlier_above"]]
    summary["verbose_answers"] = len(long)
    if not long:
        return [], summary
    return [finding(
        "length_outliers", "warning",
        f"{len(long)} answers are much longer than the rest (> {stats['outlier_above']:.0f} chars; median {stats['p50']:.0f}): "
        "verbose answers teach verbosity; shorten them or check they belong",
        [loc(r) for r in long], chars=[len(r.answer) for r in long],
    )], summary


def load_schema(schema: str | Path | dict):
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    if isinstance(schema, dict):
        doc = schema
    else:
        p = Path(schema)
        if not p.is_file():
            raise HarnessError(f"{p}: schema file not found: give a JSON Schema file (e.g. suites/ticket_triage/schema.json)")
        doc = load_json(p)
    try:
        Draft202012Validator.check_schema(doc)
    except SchemaError as e:
        raise HarnessError(f"{schema}: not a valid JSON Schema: {e.message}") from None
    return Draft202012Validator(doc)


def tasks(records: Sequence[Record]) -> dict[str, list[Record]]:
    """Records grouped by system prompt: one file may teach several tasks (JSON triage, chat)."""
    out: dict[str, list[Record]] = {}
    for r in records:
        out.setdefault(r.system, []).append(r)
    return out


def check_schema(records: Sequence[Record], loc: Callable[[Record], str], validator, name: str) -> tuple[list[dict], dict]:
    """Answers of the JSON task(s) parse as JSON valid against the schema. A task is JSON when
    most of its non-refusal answers are JSON; refusals are exempt."""
    failures: dict[str, list[Record]] = {}
    checked = 0
    for group in tasks(records).values():
        styles = [answer_style(r.answer) for r in group if r.answer]
        n_json = sum(s in ("json", "fenced_json") for s in styles)
        if n_json * 2 <= len(styles) - styles.count("refusal"):
            continue
        for r in group:
            if not r.answer or answer_style(r.answer) == "refusal":
                continue
            checked += 1
            value, err = parse_json(r.answer)
            if err is None:
                errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
                if errors:
                    where = "/".join(str(p) for p in errors[0].path) or "(root)"
                    err = f"{where}: {errors[0].message}" + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else "")
            if err:
                failures.setdefault(err, []).append(r)
    findings = [finding("schema", "warning", f"{len(rs)} answers fail {Path(name).name}: {err}", [loc(r) for r in rs], schema=name)
                for err, rs in sorted(failures.items(), key=lambda kv: kv[1][0].line)]
    return findings, {"schema": name, "schema_checked": checked, "schema_failures": sum(map(len, failures.values()))}


def check_styles(records: Sequence[Record], loc: Callable[[Record], str]) -> tuple[list[dict], dict]:
    findings = []
    all_styles = {r.line: answer_style(r.answer) for r in records if r.answer}
    summary = {"answer_styles": dict(Counter(all_styles.values()).most_common())}
    by_line = {r.line: r for r in records}
    for system, group in tasks(records).items():
        styles = {r.line: all_styles[r.line] for r in group if r.answer}
        task = f"task {system[:40]!r}" if system else "records without a system prompt"
        findings += _mixed(styles, by_line, loc, task)

    kinds = Counter(r.kind for r in records)
    if len(kinds) > 1:
        minority = min(kinds, key=kinds.get)
        findings.append(finding(
            "mixed_styles", "warning", f"mixed record shapes: {', '.join(f'{k} {v}' for k, v in kinds.most_common())}: "
            "convert them to one shape so one chat template applies", [loc(r) for r in records if r.kind == minority],
        ))
    systems = Counter(r.system or "(none)" for r in records)
    summary["system_prompts"] = len(systems)
    if len(systems) > 1:
        top = "; ".join(f"{v}x {k[:50]!r}" for k, v in systems.most_common(3))
        findings.append(finding("mixed_styles", "info", f"{len(systems)} different system prompts: {top}", counts=len(systems)))
    return findings, summary


def _mixed(styles: dict[int, str], by_line: dict, loc: Callable[[Record], str], task: str) -> list[dict]:
    """Within one task: JSON answers vs prose answers, and fenced vs bare JSON."""
    counts, findings = Counter(styles.values()), []

    def mixed(a: str, a_styles: set[str], b: str, b_styles: set[str], what: str, fix: str):
        na, nb = sum(counts[s] for s in a_styles), sum(counts[s] for s in b_styles)
        if na and nb:
            minority, name = (a_styles, a) if na <= nb else (b_styles, b)
            share = min(na, nb) / (na + nb)
            findings.append(finding(
                "mixed_styles", "warning", f"mixed {what} in {task}: {nb} {b}, {na} {a} ({share:.1%} {name}): {fix}",
                [loc(by_line[ln]) for ln, s in styles.items() if s in minority], counts={a: na, b: nb},
            ))

    mixed("prose", {"prose"}, "JSON", {"json", "fenced_json"}, "answer styles", "answer in one style (refusals aside)")
    mixed("fenced", {"fenced_json"}, "bare", {"json"}, "JSON formatting", "use either ``` fences or bare JSON, not both")
    return findings

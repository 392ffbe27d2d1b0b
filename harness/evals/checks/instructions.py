"""IFEval-style verifiable instructions. Each case lists its instructions in
`expected.instructions` as `{kind: ..., params}`; every kind is a small verifier."""

from __future__ import annotations

import re
from collections.abc import Callable

from harness.evals.checks.registry import CheckResult, Sample, check
from harness.evals.checks.text import parse_json, sentences, words

Verifier = Callable[..., bool]
VERIFIERS: dict[str, Verifier] = {}


def verifier(kind: str):
    def wrap(fn: Verifier) -> Verifier:
        VERIFIERS[kind] = fn
        return fn

    return wrap


@verifier("lowercase")
def _lowercase(text: str) -> bool:
    return text == text.lower() and any(c.isalpha() for c in text)


@verifier("uppercase")
def _uppercase(text: str) -> bool:
    return text == text.upper() and any(c.isalpha() for c in text)


@verifier("max_words")
def _max_words(text: str, n: int) -> bool:
    return 0 < len(words(text)) <= n


@verifier("min_words")
def _min_words(text: str, n: int) -> bool:
    return len(words(text)) >= n


@verifier("max_sentences")
def _max_sentences(text: str, n: int) -> bool:
    return 0 < len(sentences(text)) <= n


@verifier("bullets")
def _bullets(text: str, n: int) -> bool:
    return len(re.findall(r"^\s*[-*]\s+\S", text, re.M)) == n


@verifier("include_words")
def _include_words(text: str, words: list[str]) -> bool:
    low = text.lower()
    return all(re.search(rf"\b{re.escape(w.lower())}\b", low) for w in words)


@verifier("exclude_words")
def _exclude_words(text: str, words: list[str]) -> bool:
    low = text.lower()
    return bool(text.strip()) and not any(re.search(rf"\b{re.escape(w.lower())}\b", low) for w in words)


@verifier("no_commas")
def _no_commas(text: str) -> bool:
    return bool(text.strip()) and "," not in text and "，" not in text


@verifier("json_only")
def _json_only(text: str) -> bool:
    return parse_json(text, allow_fence=True)[1] is None


@verifier("ends_with")
def _ends_with(text: str, phrase: str) -> bool:
    return text.strip().lower().endswith(phrase.strip().lower())


@verifier("starts_with")
def _starts_with(text: str, phrase: str) -> bool:
    return text.strip().lower().startswith(phrase.strip().lower())


@verifier("title_in_brackets")
def _title(text: str) -> bool:
    return bool(re.search(r"<<[^<>\n]+>>", text))


@verifier("num_paragraphs")
def _paragraphs(text: str, n: int) -> bool:
    return len([p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]) == n


@verifier("keyword_frequency")
def _keyword_frequency(text: str, word: str, min: int) -> bool:  # noqa: A002 (the suite's name)
    return len(re.findall(rf"\b{re.escape(word.lower())}\b", text.lower())) >= min


@verifier("placeholders")
def _placeholders(text: str, n: int) -> bool:
    return len(re.findall(r"\[[^\[\]\n]+\]", text)) >= n


def verify(text: str, instruction: dict) -> bool:
    params = {k: v for k, v in instruction.items() if k != "kind"}
    return VERIFIERS[instruction["kind"]](text, **params)


@check("instructions")
def instructions(field: str = "instructions"):
    """IFEval-style: every instruction in `expected[field]` is followed (prompt-level pass);
    the score is the fraction followed (instruction-level)."""

    def score(sample: Sample) -> CheckResult:
        items = sample.case.expected.get(field) or []
        text = sample.output or ""
        results = {}
        for i, ins in enumerate(items):
            kind = ins.get("kind")
            if kind not in VERIFIERS:
                raise KeyError(f"case {sample.case.id}: unknown instruction kind {kind!r}")
            results[f"{kind}" if kind not in results else f"{kind}_{i}"] = verify(text, ins)
        failed = [k for k, ok in results.items() if not ok]
        return CheckResult(not failed, sum(results.values()) / max(len(results), 1), f"not followed: {', '.join(failed)}" if failed else "")

    return score

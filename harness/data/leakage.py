"""Leakage: training prompts that overlap eval cases (any suite in scope) or held-out records.

A training text and a reference text (an eval case's input, or a held-out record's prompt)
overlap when any of these holds, on normalised word n-grams:

- they share a verbatim span of `SPAN` words (a copied passage, however long the texts);
- both have at least `MIN_GRAMS` 3-grams and the smaller one shares at least `threshold` of
  its 3-grams with the other (containment: catches a lightly paraphrased or truncated copy);
- either is shorter than that and their 3-gram sets have a Jaccard of at least `threshold`.

Reference texts are few (hundreds of cases), so they are indexed by n-gram and every training
text streams through the index once.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from harness.data.dedup import normalize, shingles

SPAN = 13
MIN_GRAMS = 20  # below this, shared stock phrasing ("what's the best way to") dominates containment


@dataclass(frozen=True)
class Reference:
    """A text training data must not contain: an eval case or a held-out record."""

    source: str  # suite name, or a held-out file's path
    id: str  # case id, or line number
    text: str


def case_text(value) -> str:
    """An eval case's input as plain text: a string, or the string values of a dict (and lists of strings)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        parts = []
        for v in value.values():
            if isinstance(v, str):
                parts.append(v)
            elif isinstance(v, list):
                parts += [x for x in v if isinstance(x, str)]
        return "\n".join(parts)
    return ""


def suite_references(suites) -> list[Reference]:
    return [Reference(s.name, c.id, case_text(c.input)) for s in suites for c in s.cases]


@dataclass(frozen=True)
class Leak:
    record: int  # index into the training texts
    ref: Reference
    score: float  # share of the smaller text's 3-grams found in the other (or Jaccard for short texts)
    how: str  # "verbatim 13-word span" | "3-gram containment" | "3-gram jaccard"


def find_leaks(texts: Sequence[str], refs: Sequence[Reference], threshold: float = 0.5) -> list[Leak]:
    """Every (training text, reference) pair that overlaps, best evidence first per pair."""
    ref_norm = [normalize(r.text) for r in refs]
    ref_grams = [shingles(n, 3) for n in ref_norm]
    gram_index: dict[str, list[int]] = defaultdict(list)
    span_index: dict[str, list[int]] = defaultdict(list)
    for k, grams in enumerate(ref_grams):
        for g in grams:
            gram_index[g].append(k)
        for g in _spans(ref_norm[k]):
            span_index[g].append(k)

    leaks = []
    for i, text in enumerate(texts):
        norm = normalize(text)
        grams = shingles(norm, 3)
        if not grams:
            continue
        shared: Counter[int] = Counter()
        for g in grams:
            for k in gram_index.get(g, ()):
                shared[k] += 1
        spans = {k for g in _spans(norm) for k in span_index.get(g, ())}
        for k in shared.keys() | spans:
            a, b, s = len(grams), len(ref_grams[k]), shared[k]
            if k in spans:
                leaks.append(Leak(i, refs[k], s / min(a, b), f"verbatim {SPAN}-word span"))
            elif min(a, b) >= MIN_GRAMS:
                if s / min(a, b) >= threshold:
                    leaks.append(Leak(i, refs[k], s / min(a, b), "3-gram containment"))
            elif s / (a + b - s) >= threshold:
                leaks.append(Leak(i, refs[k], s / (a + b - s), "3-gram jaccard"))
    return leaks


def _spans(norm: str) -> set[str]:
    words = norm.split()
    return {" ".join(words[i : i + SPAN]) for i in range(len(words) - SPAN + 1)}

"""Verifiable instructions with IFEval's semantics: the reference checkers of Google's IFEval
(Zhou et al. 2023), as packaged by `if-verifiable`, run as they are.

Each case lists its instructions in `expected.instructions`, each `{kind: ..., params}`. A kind is
either an IFEval instruction id with IFEval's own keyword arguments
(`{kind: "length_constraints:number_words", relation: "less than", num_words: 50}`), or one of the
short names below, each defined as an IFEval checker with fixed arguments:

| short kind | IFEval checker and arguments |
| --- | --- |
| `lowercase` / `uppercase` | `change_case:english_lowercase` / `change_case:english_capital` (also: the text is English, by langdetect) |
| `max_words: n` / `min_words: n` | `length_constraints:number_words`, relation `less than` n + 1 / `at least` n (words are `\\w+` runs) |
| `max_sentences: n` | `length_constraints:number_sentences`, relation `less than` n + 1 |
| `bullets: n` | `detectable_format:number_bullet_lists`, exactly n lines starting `* ` or `-` |
| `include_words: [w]` / `exclude_words: [w]` | `keywords:existence` (anywhere, any case) / `keywords:forbidden_words` (whole words) |
| `keyword_frequency: word, min` | `keywords:frequency`, relation `at least` |
| `no_commas` | `punctuation:no_comma` |
| `json_only` | `detectable_format:json_format` (a ```json / ```Json / ```JSON fence allowed) |
| `ends_with: phrase` | `startend:end_checker` (closing quotes ignored) |
| `title_in_brackets` | `detectable_format:title` (a non-blank `<<title>>`) |
| `placeholders: n` | `detectable_content:number_placeholders`, at least n `[...]` |
| `starts_with: phrase` | no IFEval counterpart: the text, stripped of opening quotes, starts with the phrase (any case) |
| `num_paragraphs: n` | no IFEval counterpart with blank lines (IFEval's `number_paragraphs` splits on `***`): n non-empty parts split on a blank line, as IFEval's `nth_paragraph_first_word` splits |

Strict and loose follow IFEval: strict checks the answer as given; loose (`loose: true`) passes
an instruction when any of IFEval's eight variants passes (first line, last line or both
removed, each with and without `*`). An empty answer follows nothing. One deviation, forced:
IFEval counts sentences with NLTK's punkt model, a pickled download that this harness does not
load (no pickles); sentences are counted with the reference's own rule-based splitter
(`instructions_util.split_into_sentences`), which keeps "e.g." and "P.M." inside a sentence and
does not split on a bare newline.
"""

from __future__ import annotations

import re
from functools import cache

from harness.evals.checks.registry import CheckResult, Sample, check

# short kind -> (IFEval id, {IFEval argument: short parameter, or a function of the parameters})
SHORT_KINDS: dict[str, tuple[str | None, dict]] = {
    "lowercase": ("change_case:english_lowercase", {}),
    "uppercase": ("change_case:english_capital", {}),
    "max_words": ("length_constraints:number_words", {"relation": lambda p: "less than", "num_words": lambda p: p["n"] + 1}),
    "min_words": ("length_constraints:number_words", {"relation": lambda p: "at least", "num_words": lambda p: p["n"]}),
    "max_sentences": ("length_constraints:number_sentences", {"relation": lambda p: "less than", "num_sentences": lambda p: p["n"] + 1}),
    "bullets": ("detectable_format:number_bullet_lists", {"num_bullets": lambda p: p["n"]}),
    "include_words": ("keywords:existence", {"keywords": lambda p: list(p["words"])}),
    "exclude_words": ("keywords:forbidden_words", {"forbidden_words": lambda p: list(p["words"])}),
    "keyword_frequency": ("keywords:frequency", {"keyword": lambda p: p["word"], "frequency": lambda p: p["min"],
                                                 "relation": lambda p: "at least"}),
    "no_commas": ("punctuation:no_comma", {}),
    "json_only": ("detectable_format:json_format", {}),
    "ends_with": ("startend:end_checker", {"end_phrase": lambda p: p["phrase"]}),
    "title_in_brackets": ("detectable_format:title", {}),
    "placeholders": ("detectable_content:number_placeholders", {"num_placeholders": lambda p: p["n"]}),
    "starts_with": (None, {}),
    "num_paragraphs": (None, {}),
}
SHORT_PARAMS = {"max_words": {"n"}, "min_words": {"n"}, "max_sentences": {"n"}, "bullets": {"n"}, "include_words": {"words"},
                "exclude_words": {"words"}, "keyword_frequency": {"word", "min"}, "ends_with": {"phrase"}, "placeholders": {"n"},
                "starts_with": {"phrase"}, "num_paragraphs": {"n"}}


@cache
def _ifeval():
    import langdetect

    from if_verifiable.ifeval import instructions_util
    from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT

    langdetect.DetectorFactory.seed = 0  # langdetect is random unless seeded: the same text, the same verdict
    return INSTRUCTION_DICT, instructions_util


def _count_sentences(text: str) -> int:
    return len(_ifeval()[1].split_into_sentences(text))


def _starts_with(text: str, phrase: str) -> bool:
    return text.strip().lstrip("\"'“‘").lower().startswith(phrase.strip().lower())


def _num_paragraphs(text: str, n: int) -> bool:
    return sum(1 for p in re.split(r"\n\n", text) if p.strip()) == n


def build(instruction: dict):
    """A function text -> followed? for one instruction; ValueError naming what is wrong."""
    if not isinstance(instruction, dict) or not isinstance(instruction.get("kind"), str):
        raise ValueError("an instruction is an object with a 'kind'")
    kind, params = instruction["kind"], {k: v for k, v in instruction.items() if k != "kind"}
    if kind in SHORT_KINDS:
        want = SHORT_PARAMS.get(kind, set())
        if set(params) != want:
            raise ValueError(f"instruction {kind!r} takes {sorted(want) or 'no parameters'} (got {sorted(params) or 'none'})")
        for k in ("n", "min"):
            if k in params and (isinstance(params[k], bool) or not isinstance(params[k], int) or params[k] < 0):
                raise ValueError(f"instruction {kind!r}: {k} must be a whole number >= 0 (got {params[k]!r})")
        if kind == "starts_with":
            return lambda text: _starts_with(text, str(params["phrase"]))
        if kind == "num_paragraphs":
            return lambda text: _num_paragraphs(text, params["n"])
        ifeval_id, mapping = SHORT_KINDS[kind]
        return build({"kind": ifeval_id, **{k: f(params) for k, f in mapping.items()}})
    registry, _ = _ifeval()
    if kind not in registry:
        raise ValueError(f"unknown instruction kind {kind!r}: use one of {', '.join(sorted(SHORT_KINDS))} or an IFEval id "
                         f"({', '.join(sorted(registry))})")
    if kind == "length_constraints:number_sentences":
        if set(params) != {"relation", "num_sentences"} or params["relation"] not in ("less than", "at least"):
            raise ValueError(f"instruction {kind!r} takes relation ('less than' or 'at least') and num_sentences")
        n, less = int(params["num_sentences"]), params["relation"] == "less than"
        return lambda text: (_count_sentences(text) < n) if less else (_count_sentences(text) >= n)
    checker = registry[kind](kind)
    keys = set(checker.get_instruction_args_keys())
    if set(params) - keys:
        raise ValueError(f"instruction {kind!r}: unknown argument(s) {sorted(set(params) - keys)} (it takes {sorted(keys) or 'none'})")
    if keys - set(params):  # IFEval draws a missing argument at random: a check must not
        raise ValueError(f"instruction {kind!r}: missing argument(s) {sorted(keys - set(params))}")
    try:
        checker.build_description(**params)
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"instruction {kind!r}: {e}") from None
    return checker.check_following


def _loose_variants(text: str) -> list[str]:
    lines = text.split("\n")
    cut = ["\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    return [text, text.replace("*", ""), *cut, *(c.replace("*", "") for c in cut)]


def follows(text: str, instruction: dict, loose: bool = False, fn=None) -> bool:
    """IFEval's verdict for one instruction (strict, or loose over its eight variants); `fn` is
    its built checker when the caller has one."""
    fn = fn or build(instruction)
    return any(v.strip() and fn(v) for v in (_loose_variants(text) if loose else [text]))


@check("instructions")
def instructions(field: str = "instructions", loose: bool = False):
    """Every instruction in `expected[field]` is followed, judged by IFEval's reference checkers
    (prompt-level pass); the score is the fraction followed (instruction-level). `loose: true` is
    IFEval's loose variant. A kind is an IFEval id with its arguments or a short kind
    (suites/general/README.md)."""

    def instructions_of(case) -> list[tuple[dict, object]]:
        """Each instruction of the case with its built checker; ValueError naming a bad one."""
        items = case.expected.get(field) if isinstance(case.expected, dict) else None
        if not isinstance(items, list) or not items:
            raise ValueError(f"field 'expected.{field}': a list of instructions, each {{kind: ..., params}}")
        built = []
        for i, ins in enumerate(items):
            try:
                built.append((ins, build(ins)))
            except ValueError as e:
                raise ValueError(f"field 'expected.{field}.{i}': {e}") from None
        return built

    def score(sample: Sample) -> CheckResult:
        text = sample.output or ""
        results = {}
        for i, (ins, fn) in enumerate(instructions_of(sample.case)):
            name = ins["kind"] if ins["kind"] not in results else f"{ins['kind']}_{i}"
            results[name] = follows(text, ins, loose, fn)
        failed = [k for k, ok in results.items() if not ok]
        return CheckResult(not failed, sum(results.values()) / len(results), f"not followed: {', '.join(failed)}" if failed else "")

    score.validate = instructions_of
    return score


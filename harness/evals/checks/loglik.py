"""Multiple choice by log-likelihood: no generation, each choice scored as a continuation."""

from __future__ import annotations

from harness.evals.checks.registry import CheckResult, Sample, check


@check("loglik_choice", needs="loglik")
def loglik_choice(choices_field: str = "choices", answer_field: str = "answer", normalize_length: bool = False, prefix: str = ""):
    """Pick the choice with the highest log-likelihood (`normalize_length`: per byte, lm-eval's
    acc_norm); passes when it is `expected[answer_field]` (an index)."""

    def validate(case) -> None:
        """Raise ValueError naming the field when a case cannot be scored (checked at suite load)."""
        choices = case.input.get(choices_field) if isinstance(case.input, dict) else None
        if not isinstance(choices, list) or len(choices) < 2:
            got = "missing" if choices is None else f"a {type(choices).__name__}" if not isinstance(choices, list) else f"{len(choices)} item(s)"
            raise ValueError(f"field 'input.{choices_field}': a list of at least 2 choices (got {got})")
        for i, c in enumerate(choices):
            if isinstance(c, bool) or not isinstance(c, (str, int, float)):
                raise ValueError(f"field 'input.{choices_field}.{i}': a choice is text or a number (got {type(c).__name__})")
        want = case.expected.get(answer_field) if isinstance(case.expected, dict) else None
        if isinstance(want, bool) or not isinstance(want, int) or not 0 <= want < len(choices):
            raise ValueError(f"field 'expected.{answer_field}': the index of the right choice, 0 to {len(choices) - 1} (got {want!r})")

    def continuations(case) -> list[str]:
        validate(case)
        return [f"{prefix}{c}" for c in case.input[choices_field]]

    def score(sample: Sample) -> CheckResult:
        conts = continuations(sample.case)
        ll = [r.logprob / (len(c.encode()) if normalize_length else 1) for r, c in zip(sample.logliks, conts)]
        pick = max(range(len(ll)), key=ll.__getitem__)
        want = int(sample.case.expected[answer_field])
        return CheckResult(pick == want, reason="" if pick == want else f"picked {conts[pick]!r}, expected {conts[want]!r}")

    score.continuations = continuations
    score.validate = validate
    return score

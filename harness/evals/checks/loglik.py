"""Multiple choice by log-likelihood: no generation, each choice scored as a continuation."""

from __future__ import annotations

from harness.evals.checks.registry import CheckResult, Sample, check


@check("loglik_choice", needs="loglik")
def loglik_choice(choices_field: str = "choices", answer_field: str = "answer", normalize_length: bool = False, prefix: str = ""):
    """Pick the choice with the highest log-likelihood (`normalize_length`: per byte, lm-eval's
    acc_norm); passes when it is `expected[answer_field]` (an index)."""

    def continuations(case) -> list[str]:
        choices = case.input.get(choices_field) if isinstance(case.input, dict) else None
        if not choices or not isinstance(choices, list):
            raise KeyError(f"case {case.id}: input.{choices_field} must be a list of choices")
        return [f"{prefix}{c}" for c in choices]

    def score(sample: Sample) -> CheckResult:
        conts = continuations(sample.case)
        ll = [r.logprob / (len(c.encode()) if normalize_length else 1) for r, c in zip(sample.logliks, conts)]
        pick = max(range(len(ll)), key=ll.__getitem__)
        want = int(sample.case.expected[answer_field])
        return CheckResult(pick == want, reason="" if pick == want else f"picked {conts[pick]!r}, expected {conts[want]!r}")

    score.continuations = continuations
    return score

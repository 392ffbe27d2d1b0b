"""`harness suites validate --oracle`: every case's perfect answer scored by the suite's own
checks. A check that rejects a perfect answer is broken (a wrong parameter, a field the check
reads differently from the case, a check that guesses), and it shows here, before any model runs.

The perfect answer is the case's `reference` when it has one; otherwise it follows from the
checks that apply: `expected` written as JSON for JSON checks, the expected number or label for
`numeric`/`exact_match`/`choice`, a plain refusal or a plain answer for `refusal`. A choice scored
by log-likelihood is given log-likelihoods that favour the expected choice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from harness.evals.runner import score_case
from harness.evals.suite import Case, Suite
from harness.models.types import LoglikResult

JSON_CHECKS = {"json_valid", "json_schema", "field_match", "grounded_fields"}
REFUSAL = "I'm sorry, but I can't help with that."
ANSWER = "Sure. Here is a short, helpful answer to your question, written plainly."


@dataclass
class OracleReport:
    suite: str
    cases: int = 0
    scored: int = 0
    without: list[str] = field(default_factory=list)  # cases with no perfect answer to score
    rejected: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # metric -> [(case id, reason)]
    sources: dict[str, int] = field(default_factory=dict)  # where the answers came from

    @property
    def ok(self) -> bool:
        return not self.rejected


def perfect_answer(suite: Suite, case: Case) -> tuple[str | None, str]:
    """(the perfect output for `case`, where it comes from), or (None, why there is none)."""
    if case.reference is not None:
        ref = case.reference
        return (ref if isinstance(ref, str) else json.dumps(ref, ensure_ascii=False)), "reference"
    applied = [bc for bc in suite.checks if bc.applies(case) and bc.needs == "generation"]
    names = {bc.spec.check for bc in applied}
    exp = case.expected
    if names & JSON_CHECKS and isinstance(exp, dict):
        return json.dumps(exp, ensure_ascii=False), "expected as JSON"
    for bc in applied:
        if bc.spec.check == "refusal":
            want = bc.spec.params.get("expect") or (exp.get(bc.spec.params.get("field", "behaviour")) if isinstance(exp, dict) else None)
            return (REFUSAL if want == "refuse" else ANSWER), "a plain refusal or answer"
    for bc in applied:
        if bc.spec.check in ("numeric", "exact_match", "choice"):
            f = bc.spec.params.get("field", "answer")
            value = exp.get(f) if isinstance(exp, dict) else exp
            if value is not None:
                return str(value), f"expected.{f}"
    if not applied:
        return "", "scored without generation"
    return None, f"no `reference` and no answer follows from {', '.join(sorted(names))}"


def _favouring_the_answer(suite: Suite, case: Case) -> dict:
    """Log-likelihoods for each loglik check: the expected choice far above the others."""
    out = {}
    for bc in suite.checks:
        if bc.needs == "loglik" and bc.applies(case):
            conts = bc.fn.continuations(case)
            ans = bc.spec.params.get("answer_field", "answer")
            want = case.expected.get(ans) if isinstance(case.expected, dict) else None
            # per byte or not, the expected choice must win: -1 per byte against -100 per byte
            out[bc.spec.metric] = [LoglikResult(-len(c.encode()) * (1 if i == want else 100), i == want) for i, c in enumerate(conts)]
    return out


def check_oracle(suite: Suite) -> OracleReport:
    report = OracleReport(suite.name, cases=len(suite.cases))
    for case in suite.cases:
        output, source = perfect_answer(suite, case)
        if output is None:
            report.without.append(f"{case.id}: {source}")
            continue
        report.sources[source] = report.sources.get(source, 0) + 1
        report.scored += 1
        rows = score_case(suite, case, output if suite.needs_generation(case) else None, suite.messages(case),
                          _favouring_the_answer(suite, case))
        for r in rows:
            if not r["passed"]:
                report.rejected.setdefault(r["metric"], []).append((case.id, r.get("error") or r["reason"]))
    return report

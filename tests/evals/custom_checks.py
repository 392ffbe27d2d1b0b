"""A third-party check, referenced from suite.yaml as `tests.evals.custom_checks:shouty`."""

from harness.evals.checks import CheckResult


def shouty(min_bangs: int = 1):
    """The output ends with at least `min_bangs` exclamation marks."""

    def score(sample):
        n = len(sample.output) - len(sample.output.rstrip("!"))
        return CheckResult(n >= min_bangs, reason=f"{n} bangs")

    return score


def fragile():
    """Raises on cases whose `expected.broken` is true: a check with a bug, for the error-handling tests."""

    def score(sample):
        if (sample.case.expected or {}).get("broken"):
            raise RuntimeError("cannot read this case")
        return CheckResult(True)

    return score

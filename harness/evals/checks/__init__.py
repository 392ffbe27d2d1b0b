"""Built-in checks; importing this package registers them."""

from harness.evals.checks import format, grounding, instructions, loglik, safety  # noqa: F401
from harness.evals.checks.registry import CheckInfo, CheckResult, Sample, available_checks, check, get_check

__all__ = ["CheckInfo", "CheckResult", "Sample", "available_checks", "check", "get_check"]

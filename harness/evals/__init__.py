"""Eval suites, checks, the runner, the completion cache, results and slice metrics."""

from harness.evals.api import default_out_dir, load_suites, render_tables, run_eval
from harness.evals.cache import CompletionCache
from harness.evals.checks import CheckResult, Sample, available_checks, check, get_check
from harness.evals.results import SuiteResult, load_results, write_result
from harness.evals.runner import cached_generate, cached_loglikelihood, evaluate_suite, rescore
from harness.evals.suite import Case, Suite, SuiteSpec, find_suites, load_suite

__all__ = [
    "Case",
    "CheckResult",
    "CompletionCache",
    "Sample",
    "Suite",
    "SuiteResult",
    "SuiteSpec",
    "available_checks",
    "cached_generate",
    "cached_loglikelihood",
    "check",
    "default_out_dir",
    "evaluate_suite",
    "find_suites",
    "get_check",
    "load_results",
    "load_suite",
    "load_suites",
    "render_tables",
    "rescore",
    "run_eval",
    "write_result",
]

"""Paired comparison, gate policies and decisions."""

from harness.gates.compare import Comparison, IncomparableResults, MetricComparison, compare
from harness.gates.decision import FAIL, INSUFFICIENT, PASS, SKIPPED, GateDecision, RuleResult, decide, render_markdown
from harness.gates.paired import holm, mcnemar_exact, paired_bootstrap, tango_interval, tango_pvalue_noninferior
from harness.gates.policy import DEFAULT_POLICY, Policy, Rule, load_policy
from harness.gates.api import run_compare, run_gate

__all__ = [
    "DEFAULT_POLICY",
    "FAIL",
    "INSUFFICIENT",
    "PASS",
    "SKIPPED",
    "Comparison",
    "GateDecision",
    "IncomparableResults",
    "MetricComparison",
    "Policy",
    "Rule",
    "RuleResult",
    "compare",
    "decide",
    "holm",
    "load_policy",
    "mcnemar_exact",
    "paired_bootstrap",
    "render_markdown",
    "run_compare",
    "run_gate",
    "tango_interval",
    "tango_pvalue_noninferior",
]

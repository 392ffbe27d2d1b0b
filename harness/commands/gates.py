"""Gate commands: `harness compare`, `harness gate` (exit 0 pass, 1 fail, 2 usage/config error)."""

from __future__ import annotations

import argparse

from harness.commands import command, out_json


@command("compare", "Paired comparison of two results folders: deltas, 95 % intervals, McNemar p-values, flipped cases.")
def cmd_compare(p: argparse.ArgumentParser):
    p.add_argument("baseline", help="results folder of the baseline (from `harness eval`)")
    p.add_argument("candidate", help="results folder of the candidate")
    p.add_argument("--slices", action="store_true", help="also show every slice value")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")

    def run(a):
        from harness.gates import run_compare
        from harness.gates.api import render_comparison

        c = run_compare(a.baseline, a.candidate)
        if a.json:
            return out_json(c.to_dict())
        render_comparison(c, a.slices)

    return run


@command("gate", "Apply a gate policy to baseline vs candidate results; exit 0 pass, 1 fail, 2 config error. "
                 "`harness gate plan` says beforehand which rules the suites can decide.")
def cmd_gate(p: argparse.ArgumentParser):
    p.add_argument("--baseline", help="results folder of the baseline (required)")
    p.add_argument("--candidate", help="results folder of the candidate (required)")
    p.add_argument("--policy", help="gate policy YAML (default: the shipped harness/gates/default_policy.yaml)")
    p.add_argument("--summary-md", help="write the Markdown summary (fits a CI comment) to this file")
    p.add_argument("--json", dest="json_out", help="write the full decision as JSON to this file")

    def run(a):
        from harness.gates import run_gate
        from harness.gates.api import render_decision

        missing = [f"--{k}" for k in ("baseline", "candidate") if not getattr(a, k)]
        if missing:
            p.error(f"the following arguments are required: {', '.join(missing)} (or `harness gate plan` to plan a gate)")
        d = run_gate(a.baseline, a.candidate, a.policy, a.summary_md, a.json_out)
        render_decision(d)
        return 0 if d.passed else 1

    return run


@command("gate plan", "Before evaluating: for each rule of a policy, the cases it needs to be decided at its margin, "
                      "and which rules the suites can decide. Exit 1 with --strict when a blocking rule cannot be.")
def cmd_gate_plan(p: argparse.ArgumentParser):
    p.add_argument("suites", nargs="*", default=["suites"], help="suite folders or a folder of suites (default: suites/)")
    p.add_argument("--policy", help="gate policy YAML (default: the shipped policy)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--baseline", help="results folder of the base model, for its rates (default: an assumed rate)")
    src.add_argument("--model", help="find the base model's cached baseline in $HARNESS_HOME (as `harness run` does)")
    p.add_argument("--max-cases", type=int, help="plan for a run that evaluates at most N cases per suite")
    p.add_argument("--flip-rate", type=float, help="share of cases an equal candidate flips (default: the policy's plan.flip_rate)")
    p.add_argument("--power", type=float, help="chance of a decision asked of each rule (default: the policy's plan.power, 0.8)")
    p.add_argument("--improvement", type=float, help="gain a must_improve rule is planned to show (default: plan.improvement)")
    p.add_argument("--looks", type=int, help="plan for a sequential evaluation with this many looks (eval.sequential)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a blocking rule cannot be decided")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the plan as JSON")
    fmt.add_argument("--markdown", action="store_true", help="print the plan as Markdown")

    def run(a):
        from harness.gates.api import plan_gate, render_plan

        gp = plan_gate(a.suites, a.policy, baseline=a.baseline, model=a.model, max_cases=a.max_cases, flip_rate=a.flip_rate,
                       power=a.power, improvement=a.improvement, looks=a.looks)
        if a.json:
            out_json(gp.to_dict())
        elif a.markdown:
            print(gp.to_markdown(), end="")
        else:
            render_plan(gp)
        return 1 if a.strict and gp.undecidable else 0

    return run

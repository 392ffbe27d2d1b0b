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


@command("gate", "Apply a gate policy to baseline vs candidate results; exit 0 pass, 1 fail, 2 config error.")
def cmd_gate(p: argparse.ArgumentParser):
    p.add_argument("--baseline", required=True, help="results folder of the baseline")
    p.add_argument("--candidate", required=True, help="results folder of the candidate")
    p.add_argument("--policy", help="gate policy YAML (default: the shipped harness/gates/default_policy.yaml)")
    p.add_argument("--summary-md", help="write the Markdown summary (fits a CI comment) to this file")
    p.add_argument("--json", dest="json_out", help="write the full decision as JSON to this file")

    def run(a):
        from harness.gates import run_gate
        from harness.gates.api import render_decision

        d = run_gate(a.baseline, a.candidate, a.policy, a.summary_md, a.json_out)
        render_decision(d)
        return 0 if d.passed else 1

    return run

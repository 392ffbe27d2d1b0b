"""`harness run`: the wrapped training run."""

from __future__ import annotations

import argparse

from harness.commands import command, out_json


@command("run", "Run the whole loop for RUN.yaml: data checks, baseline, train, candidate, gate, registry, report, promotion.")
def cmd_run(p: argparse.ArgumentParser):
    p.add_argument("config", nargs="?", help="run config YAML (e.g. examples/ticket_triage/run.yaml)")
    p.add_argument("--resume", metavar="RUN_ID", help="continue a failed or interrupted run after its last finished stage")
    p.add_argument("--registry", help="registry file (default: $HARNESS_HOME/registry.db)")
    p.add_argument("--json", action="store_true", help="print where everything is as JSON at the end")
    p.add_argument("--strict", action="store_true", help="refuse to train when the gate plan finds a blocking rule the "
                   "run's cases cannot decide (eval.plan: strict)")

    def run(a):
        from harness.errors import HarnessError
        from harness.pipeline import resume, run
        from harness.registry import Registry

        if bool(a.config) == bool(a.resume):
            raise HarnessError("give either a run config or --resume RUN_ID")
        reg = Registry(a.registry) if a.registry else None
        summary = resume(a.resume, reg, a.strict) if a.resume else run(a.config, reg, a.strict)
        if a.json:
            return out_json(summary)
        from harness.pipeline import print_summary

        print_summary(summary)
        return 0

    return run

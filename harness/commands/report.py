"""`harness report`: the HTML report of a run, or the history page of a channel."""

from __future__ import annotations

import argparse

from harness.commands import command


@command("report", "Write the HTML report of a run (or, with --channel, a channel's history) from recorded results.")
def cmd_report(p: argparse.ArgumentParser):
    p.add_argument("run", nargs="?", help="run id (see `harness runs`); omit with --channel")
    p.add_argument("--channel", help="write the history page of this channel (e.g. production) instead of a run report")
    p.add_argument("--out", default="reports", help="folder for the HTML file (default: reports/)")
    p.add_argument("--registry", metavar="PATH", help="registry file (default: $HARNESS_HOME/registry.db)")
    p.add_argument("--run-dir", metavar="DIR", help="the run's folder with state.json (default: $HARNESS_HOME/runs/RUN)")

    def run(a):
        from harness.errors import HarnessError

        if bool(a.run) == bool(a.channel):
            raise HarnessError("give a run id or --channel NAME (one of the two): `harness report RUN_ID` or "
                               "`harness report --channel production`")
        from harness.registry import Registry
        from harness.report import write_channel_report, write_run_report

        reg = Registry(a.registry, create=False)
        if a.channel:
            path = write_channel_report(a.channel, registry=reg, out_dir=a.out)
        else:
            path = write_run_report(a.run, registry=reg, out_dir=a.out, run_dir=a.run_dir)
        print(path)

    return run

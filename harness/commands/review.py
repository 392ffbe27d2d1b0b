"""Human review commands: `harness review serve`, `review export`, `review stats`."""

from __future__ import annotations

import argparse
import sys

from harness.commands import command, out_json

REGISTRY_HELP = "registry file (default: $HARNESS_HOME/registry.db)"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run id (see `harness runs`)")
    p.add_argument("--suite", help="only this suite (a name), or the suite folder when the run's config does not name it")
    p.add_argument("--registry", metavar="PATH", help=REGISTRY_HELP)
    p.add_argument("--run-dir", metavar="DIR", help="the run's folder with state.json (default: $HARNESS_HOME/runs/RUN)")


def _open(a):
    from harness.registry import Registry

    return Registry(a.registry, create=False)


def _rate(w: dict) -> str:
    if w["value"] is None:
        return "-  (no decisive or tie votes)"
    lo, hi = w["ci"]
    return f"{w['value']:.3f} [{lo:.3f}, {hi:.3f}]  n={w['n']}"


@command("review serve", "Open a local page to judge a run's baseline and candidate outputs side by side, in hidden random order.")
def cmd_review_serve(p: argparse.ArgumentParser):
    _common(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    p.add_argument("--reviewer", help="name recorded with each vote (default: $USER)")

    def run(a):
        from harness.review import serve

        progress = serve(a.run, _open(a), suite=a.suite, reviewer=a.reviewer, host=a.host, port=a.port,
                         run_dir=a.run_dir, announce=lambda m: print(m, file=sys.stderr, flush=True))
        print(f"stopped: {progress['voted']}/{progress['total']} cases voted", file=sys.stderr)

    return run


@command("review export", "Write a run's review votes as DPO preference pairs (prompt, chosen, rejected) with their provenance.")
def cmd_review_export(p: argparse.ArgumentParser):
    _common(p)
    p.add_argument("--format", default="dpo", choices=["dpo"], help="output format (dpo: {prompt, chosen, rejected, provenance})")
    p.add_argument("--out", required=True, help="JSONL file to write (replaced)")
    p.add_argument("--json", action="store_true", help="print the counts as JSON")

    def run(a):
        from harness.review import export_pairs

        info = export_pairs(a.run, _open(a), a.out, a.format, a.suite, a.run_dir)
        if a.json:
            return out_json(info)
        left = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in info.items() if k not in ("path", "pairs"))
        print(f"{info['pairs']} pairs written to {info['path']}" + (f" (left out: {left})" if left else ""))

    return run


@command("review stats", "A run's human review: candidate win rate with a 95 % interval, per slice, and agreement between reviewers.")
def cmd_review_stats(p: argparse.ArgumentParser):
    _common(p)
    p.add_argument("--json", action="store_true", help="print the whole summary as JSON")

    def run(a):
        from harness.review import review_summary

        s = review_summary(a.run, _open(a), a.suite, a.run_dir)
        if a.json:
            return out_json(s)
        c = s["counts"]
        total = f"/{s['cases_total']}" if s["cases_total"] is not None else ""
        print(f"run {a.run}: {c['votes']} votes on {s['cases_voted']}{total} cases by {', '.join(s['reviewers']) or 'nobody yet'}")
        print(f"candidate win rate  {_rate(s['win_rate'])}   ({c['wins']} candidate, {c['losses']} baseline, "
              f"{c['ties']} ties count half, {c['both_bad']} both bad left out)")
        for name, sl in s["slices"].items():
            print(f"  {name:<24} {_rate(sl['win_rate'])}")
        ag = s["agreement"]
        if ag["cases"]:
            kappa = "undefined (one category only)" if ag["kappa"] is None else f"{ag['kappa']:.3f}"
            print(f"agreement on {ag['cases']} shared cases: {ag['percent']:.1%} of reviewer pairs agree; "
                  f"{'Cohen' if ag['method'] == 'cohen' else 'Fleiss'} kappa {kappa}")
            for pr in ag["pairs"] if len(ag["pairs"]) > 1 else []:
                k = "-" if pr["kappa"] is None else f"{pr['kappa']:.3f}"
                print(f"  {' & '.join(pr['reviewers'])}: {pr['cases']} cases, {pr['percent']:.1%} agree, kappa {k}")
        else:
            print("agreement: no case has votes from two reviewers yet")
        for note in s["notes"]:
            print(f"note: {note}", file=sys.stderr)

    return run

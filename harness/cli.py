"""The `harness` command line: thin commands, one library call each.

Imports are lazy so `harness --help` is instant. Every `HarnessError` becomes one line on stderr
and exit code 2; no traceback for user errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

COMMANDS: dict[str, tuple[str, Callable]] = {}


def command(name: str, help: str):
    """Register `name` (space-separated for sub-commands) with its help text."""

    def wrap(fn):
        COMMANDS[name] = (help, fn)
        return fn

    return wrap


def _out(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


# ---- models --------------------------------------------------------------------------------
@command("models show", "Resolve a model spec and print its architecture, size, dtype, fingerprint and cache path.")
def cmd_models_show(p: argparse.ArgumentParser):
    p.add_argument("spec", help="alias (smollm2-135m-instruct), local folder or hub id")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def run(a):
        from harness.models import describe

        info = describe(a.spec)
        if a.json:
            return _out(info)
        _table(info)

    return run


@command("demo", "Run the demo: load the embedded base model and generate (later: the whole wrapped run).")
def cmd_demo(p: argparse.ArgumentParser):
    p.add_argument("--model", default="smollm2-135m-instruct", help="model spec (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--prompt", default="In one sentence, why should a fine-tuned model be evaluated before it ships?")

    def run(a):
        from harness.demo import generation_demo

        generation_demo(a.model, a.prompt)

    return run


# ---- evals ---------------------------------------------------------------------------------
@command("eval", "Evaluate a model (and adapter) on suites; print metrics overall and per slice; write results.")
def cmd_eval(p: argparse.ArgumentParser):
    p.add_argument("suites", nargs="+", help="suite folders, or a folder of suites (e.g. suites/)")
    p.add_argument("--model", default="smollm2-135m-instruct", help="model spec (alias, local folder or hub id)")
    p.add_argument("--adapter", help="PEFT adapter folder to attach to the model")
    p.add_argument("--out", help="results folder (default: $HARNESS_HOME/results/<fingerprint>[+<adapter>])")
    p.add_argument("--rescore", action="store_true", help="re-run the checks on the outputs saved in --out, without generating")
    p.add_argument("--batch-size", type=int, help="generation batch size (default: from the memory budget)")
    p.add_argument("--latency-sample", type=int, help="cases timed at batch 1 per suite (default: the suite's latency_sample)")
    p.add_argument("--no-cache", action="store_true", help="generate everything afresh (the cache is still not written)")
    p.add_argument("--json", action="store_true", help="print the summaries as JSON instead of tables")

    def run(a):
        from harness.evals import render_tables, run_eval

        results, out = run_eval(
            a.suites, a.model, a.adapter, a.out, do_rescore=a.rescore, batch_size=a.batch_size,
            latency_n=a.latency_sample, use_cache=not a.no_cache,
        )
        if a.json:
            _out({name: r.summary for name, r in results.items()})
        else:
            render_tables(results)
        print(f"results: {out}", file=sys.stderr)

    return run


@command("suites validate", "Validate suite folders (YAML, cases, checks, templates); report every problem at once.")
def cmd_suites_validate(p: argparse.ArgumentParser):
    p.add_argument("suites", nargs="*", default=["suites"], help="suite folders or a folder of suites (default: suites/)")

    def run(a):
        from harness.evals import load_suites

        for s in load_suites(a.suites):
            gen = sum(s.needs_generation(c) for c in s.cases)
            print(f"ok  {s.name:<16} v{s.spec.version}  {len(s.cases):>4} cases ({gen} generated)  "
                  f"{len(s.checks)} checks  hash {s.hash[:12]}")

    return run


def _table(info: dict) -> None:
    width = max(len(k) for k in info)
    for k, v in info.items():
        print(f"{k:<{width}}  {v}")


# ---- entry point ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from harness import __version__

    parser = argparse.ArgumentParser(
        prog="harness",
        description="Evaluation-first fine-tuning: every run wrapped in before/after evals, gates and a registry.",
    )
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for name, (help_text, factory) in COMMANDS.items():
        parts = name.split()
        if len(parts) == 1:
            sp = subs.add_parser(parts[0], help=help_text, description=help_text)
        else:
            group = groups.get(parts[0])
            if group is None:
                gp = subs.add_parser(parts[0], help=f"{parts[0]} commands", description=f"{parts[0]} commands")
                group = groups[parts[0]] = gp.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
            sp = group.add_parser(parts[1], help=help_text, description=help_text)
        sp.set_defaults(_run=factory(sp))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    from harness.errors import HarnessError

    try:
        code = args._run(args)
    except HarnessError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())

"""Registry commands: `harness promote`, `rollback`, `status`, `history`, `runs`, `show`,
`verify`, `export`. Each opens the registry and calls one `Registry` method."""

from __future__ import annotations

import argparse

from harness.commands import command, out_json

REGISTRY_HELP = "registry file (default: $HARNESS_HOME/registry.db)"


def _open(a):
    from harness.registry import Registry

    return Registry(a.registry, create=False)


def _registry_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--registry", metavar="PATH", help=REGISTRY_HELP)


@command("promote", "Point a channel at a run's adapter; refused unless its gate passed and its base matches the channel's.")
def cmd_promote(p: argparse.ArgumentParser):
    p.add_argument("run", help="run id (see `harness runs`)")
    p.add_argument("--channel", default="production", help="channel to move (default: production)")
    p.add_argument("--force", action="store_true", help="promote despite a missing or failed gate or another base (needs --reason)")
    p.add_argument("--reason", help="why; required with --force and recorded in the audit log")
    p.add_argument("--json", action="store_true", help="print the new history entry as JSON")
    _registry_arg(p)

    def run(a):
        entry = _open(a).promote(a.run, a.channel, force=a.force, reason=a.reason)
        if a.json:
            return out_json(entry)
        forced = " (forced)" if entry["forced"] else ""
        print(f"{a.channel}: adapter {entry['adapter_hash'][:12]} of run {a.run} promoted{forced} (history #{entry['seq']})")

    return run


@command("rollback", "Move a channel back to the adapter promoted before the current one (appends to its history).")
def cmd_rollback(p: argparse.ArgumentParser):
    p.add_argument("channel", help="channel to roll back, e.g. production")
    p.add_argument("--reason", help="why; recorded in the audit log")
    p.add_argument("--json", action="store_true", help="print the new history entry as JSON")
    _registry_arg(p)

    def run(a):
        entry = _open(a).rollback(a.channel, reason=a.reason)
        if a.json:
            return out_json(entry)
        print(f"{a.channel}: rolled back to adapter {entry['adapter_hash'][:12]} of run {entry['run_id']} "
              f"(history #{entry['seq']})")

    return run


def _report(p: argparse.ArgumentParser, fetch, render: str, json_help: str = "print JSON instead of text"):
    """A read-only command: `fetch(registry, args)` printed as JSON or by `harness.registry.render.<render>`."""
    p.add_argument("--json", action="store_true", help=json_help)
    _registry_arg(p)

    def run(a):
        from harness.registry import render as rendering

        found = fetch(_open(a), a)
        if a.json:
            return out_json(found)
        print(getattr(rendering, render)(found))

    return run


@command("status", "For each channel: the active base model, adapter, run, training data, config, eval summary and gate.")
def cmd_status(p: argparse.ArgumentParser):
    return _report(p, lambda reg, a: reg.status(), "status_text")


@command("history", "Every promotion and rollback of a channel, oldest first, with who, when and why.")
def cmd_history(p: argparse.ArgumentParser):
    p.add_argument("channel", help="channel name, e.g. production")
    return _report(p, lambda reg, a: reg.history(a.channel), "history_text", "print JSON instead of a table")


@command("runs", "List recorded runs, newest first: status, adapter, gate verdict and blocking rules, channels serving it.")
def cmd_runs(p: argparse.ArgumentParser):
    p.add_argument("--limit", type=int, default=50, help="how many runs (default: 50)")
    return _report(p, lambda reg, a: reg.runs(limit=a.limit), "runs_text", "print JSON instead of a table")


@command("show", "Everything recorded about a run: config, environment, timings, adapter, evals, gate decisions.")
def cmd_show(p: argparse.ArgumentParser):
    p.add_argument("run", help="run id (see `harness runs`)")
    return _report(p, lambda reg, a: reg.show(a.run), "show_text")


@command("verify", "Re-hash every stored adapter against its manifest; exit 1 if any is damaged.")
def cmd_verify(p: argparse.ArgumentParser):
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    _registry_arg(p)

    def run(a):
        from harness.registry.render import verify_text

        rows = _open(a).verify()
        if a.json:
            out_json(rows)
        else:
            print(verify_text(rows))
        return 1 if any(not r["ok"] for r in rows) else 0

    return run


@command("export", "Print how to serve a channel's adapter (a `vllm serve` command, vLLM's --lora-modules argument, the "
                   "folder), or write it merged into its base or as a folder Hugging Face tools open.")
def cmd_export(p: argparse.ArgumentParser):
    p.add_argument("channel", help="channel name, e.g. production")
    p.add_argument("--format", choices=["vllm", "lora-modules", "path", "merged", "hf"], default="vllm",
                   help="vllm: a complete `vllm serve` command (base, --enable-lora, --max-lora-rank, --lora-modules, the "
                        "gated dtype); lora-modules: only `--lora-modules NAME=PATH`; path: the verified adapter folder; "
                        "merged: the adapter merged into its base, written to --out after a fidelity check (token-identical "
                        "outputs, every multiple-choice answer the same, rate metrics within --max-delta); hf: a copy for "
                        "Hugging Face tools in --out (AutoPeftModelForCausalLM opens it; base_model_name_or_path a loadable id "
                        "or folder, a model card README with the gate's verdict and rules)")
    p.add_argument("--port", type=int, default=8000, help="vllm: the port in the printed command (default: 8000)")
    p.add_argument("--out", metavar="DIR", help="merged, hf: the folder to write (new or empty)")
    p.add_argument("--min-identical", type=float, default=0.98, metavar="RATE",
                   help="merged: the least share of the gate's generated cases whose output must be token-identical to "
                        "base + adapter's (default: 0.98)")
    p.add_argument("--max-delta", type=float, default=0.02, metavar="D",
                   help="merged: the most any rate metric may move against base + adapter (default: 0.02)")
    p.add_argument("--max-cases", type=int, metavar="N", help="merged: check on at most N cases per suite (default: the run's)")
    p.add_argument("--json", action="store_true", help="merged: print the export's registry row as JSON; hf: what was written")
    _registry_arg(p)

    def run(a):
        from harness.errors import HarnessError

        if a.format == "hf":
            from harness.hf_export import export_hf

            if not a.out:
                raise HarnessError("export --format hf needs --out DIR: the folder the adapter is written to")
            entry = export_hf(_open(a), a.channel, a.out)
            if a.json:
                return out_json(entry)
            rev = f" at revision {entry['revision']}" if entry["revision"] else ""
            return print(f"{a.channel}: adapter {entry['adapter_hash'][:12]} written to {entry['path']} "
                         f"(base {entry['base_model_name_or_path']}{rev}; model card README.md)")
        if a.format != "merged":
            return print(_open(a).export(a.channel, fmt=a.format, port=a.port))
        from harness.merge import export_merged
        from harness.registry.render import fidelity_text

        if not a.out:
            raise HarnessError("export --format merged needs --out DIR: the folder the merged model is written to")
        entry = export_merged(_open(a), a.channel, a.out, min_identical=a.min_identical, max_delta=a.max_delta,
                              max_cases=a.max_cases)
        if a.json:
            return out_json(entry)
        print(f"{a.channel}: merged model written to {entry['path']} (export #{entry['id']}): {fidelity_text(entry['fidelity'])}")

    return run

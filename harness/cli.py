"""The `harness` command line: thin commands, one library call each.

Imports are lazy so `harness --help` is instant. Every `HarnessError` becomes one line on stderr
and exit code 2; no traceback for user errors.
"""

from __future__ import annotations

import argparse
import sys

from harness.commands import load_all


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
    singles: dict[str, argparse.ArgumentParser] = {}
    for name, (help_text, factory) in load_all().items():
        parts = name.split()
        if len(parts) == 1:
            sp = singles[parts[0]] = subs.add_parser(parts[0], help=help_text.replace("%", "%%"), description=help_text)
        else:
            group = groups.get(parts[0])
            if group is None and parts[0] in singles:  # a command with sub-commands of its own (`gate`, `gate plan`)
                group = groups[parts[0]] = singles[parts[0]].add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
            if group is None:
                gp = subs.add_parser(parts[0], help=f"{parts[0]} commands", description=f"{parts[0]} commands")
                group = groups[parts[0]] = gp.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
            sp = group.add_parser(parts[1], help=help_text.replace("%", "%%"), description=help_text)
        sp.set_defaults(_run=factory(sp))
    return parser


# Offline (the Makefile sets HF_HUB_OFFLINE), bitsandbytes' import tries to fetch a CPU 4-bit kernel
# from the Hub and warns twice that it cannot, on every command, QLoRA or not; it falls back to its
# own kernel. Those two loggers keep their errors.
OFFLINE_NOISE = ("kernels._internals.hf_hub", "bitsandbytes.backends.cpu.ops")


def quiet_offline_noise() -> None:
    import logging

    from harness.models.specs import hub_offline

    if hub_offline():
        for name in OFFLINE_NOISE:
            logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    quiet_offline_noise()
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
    except OSError as e:  # the OS refused a file the user named: permissions, a full disk, a name too long
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())

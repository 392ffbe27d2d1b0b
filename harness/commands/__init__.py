"""Command registry: each module here registers thin commands with `@command(...)`.

A command factory receives its argparse sub-parser, adds arguments (each with help text) and
returns `run(args)`, which calls one library function. Imports inside `run` stay lazy so that
`harness --help` is instant. Nothing here imports the heavy libraries at module level.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from harness.catalog import Catalog

COMMANDS: Catalog[tuple[str, Callable]] = Catalog("command")
MODULES = ("models", "evals", "gates", "registry", "train", "data", "pipeline", "report", "review")


def command(name: str, help: str):
    """Register `name` (space-separated for sub-commands) with its help text."""
    return COMMANDS.decorator(name, lambda fn: (help, fn))


def out_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


def print_table(info: dict) -> None:
    width = max(len(k) for k in info)
    for k, v in info.items():
        print(f"{k:<{width}}  {v}")


def load_all() -> dict[str, tuple[str, Callable]]:
    """Import every command module that exists; each registers its commands."""
    import importlib

    for name in MODULES:
        try:
            importlib.import_module(f"harness.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"harness.commands.{name}":
                raise
    return COMMANDS

"""Every CLI command has help text and a row in the README's command reference."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import build_parser
from harness.commands import load_all

COMMANDS = load_all()

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_has_help_and_is_documented(name):
    help_text, _ = COMMANDS[name]
    assert len(help_text) > 20, f"{name}: help text too short"
    assert re.search(rf"`harness {re.escape(name)}[ `]", README), f"`harness {name}` missing from README's command reference"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_help_runs(name):
    proc = subprocess.run([sys.executable, "-m", "harness.cli", *name.split(), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "usage: harness" in proc.stdout


def test_every_argument_has_help():
    parser = build_parser()
    for action in parser._subparsers._group_actions:
        for name, sub in action.choices.items():
            subs = [sub]
            if sub._subparsers:
                subs = list(sub._subparsers._group_actions[0].choices.values())
            for sp in subs:
                for a in sp._actions:
                    if a.dest not in ("help",) and not a.dest.startswith("_"):
                        assert a.help, f"{sp.prog}: argument {a.dest} has no help"


def test_top_level_help_lists_every_command():
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for name in COMMANDS:
        assert name.split()[0] in proc.stdout

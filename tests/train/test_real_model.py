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

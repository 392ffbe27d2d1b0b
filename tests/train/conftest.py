"""Training fixtures: small handwritten datasets and a config factory on the tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "train"

# learning rates high enough that the 2-layer random model's loss drops within a few steps
TINY_LR = {
    "full": 1e-2,
    "lora": 1e-2,
    "qlora": 1e-2,
    "prompt_tuning": 1e-1,
    "prefix_tuning": 1e-1,
    "ia3": 1e-1,
    "lokr": 2e-2,
    "dpo": 1e-2,
}


@pytest.fixture
def tiny_cfg(tiny_model_dir, tmp_path):
    """A config dict for `method` on the tiny model: 3 steps of 2 records, loss logged every step."""

    def make(method: str, name: str = "run", **over) -> dict:
        cfg = {
            "base_model": str(tiny_model_dir),
            "method": method,
            "train_data": str(FIXTURES / ("tiny_dpo.jsonl" if method == "dpo" else "tiny_chat.jsonl")),
            "output_dir": str(tmp_path / name),
            "max_steps": 3,
            "batch_size": 2,
            "learning_rate": TINY_LR[method],
            "logging_steps": 1,
            "save_steps": 2,
            "max_length": 64,
            "num_virtual_tokens": 4,
            "precision": "fp32",  # exact comparisons; the bf16 path has its own tests
        }
        cfg.update(over)
        return cfg

    return make


def chat_ids(tokenizer, text: str = "What colour is the sky?"):
    """Token ids of one rendered chat prompt, as a [1, n] tensor."""
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)
    return tokenizer(rendered, add_special_tokens=False, return_tensors="pt")["input_ids"]


@pytest.fixture(autouse=True)
def one_thread(request):
    """The tiny model's matmuls are too small to share: on a busy 2-core machine, two torch threads
    spend 100x longer waiting on each other than computing. Real-model (slow) tests keep the default."""
    import torch

    if request.node.get_closest_marker("slow"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

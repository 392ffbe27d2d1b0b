"""Shared fixtures: a tiny random Llama built from the SmolLM2 tokenizer (fast tests) and the real
embedded model (slow tests). Both are local safetensors folders, loaded like any user model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]

# Shared, noisy 2-core machines: no per-example deadlines (speed lives in bench/, not tests).
from hypothesis import settings  # noqa: E402

settings.register_profile("harness", deadline=None, print_blob=True)
settings.load_profile("harness")


def build_tiny_model(folder: Path, seed: int = 0) -> Path:
    """A 2-layer, hidden-64 Llama with SmolLM2's tokenizer and chat template, random weights."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from harness.models import load_tokenizer, resolve

    real = resolve("smollm2-135m-instruct").path
    tok = load_tokenizer(real)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # larger init than default so greedy outputs vary with the prompt instead of repeating one token
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.3)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_backend(tiny_model_dir):
    from harness.models import HFBackend

    return HFBackend.from_spec(str(tiny_model_dir))


@pytest.fixture(scope="session")
def real_backend():
    from harness.models import HFBackend

    return HFBackend.from_spec("smollm2-135m-instruct")


def make_adapter(model_dir: Path, out: Path, kind: str = "lora", seed: int = 1) -> Path:
    """Save a PEFT adapter with random, non-zero weights so it changes the model's outputs."""
    import torch
    from peft import IA3Config, LoraConfig, PromptTuningConfig, TaskType, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if kind == "lora":
        cfg = LoraConfig(r=8, lora_alpha=64, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False,
                         task_type=TaskType.CAUSAL_LM)
    elif kind == "prompt_tuning":
        cfg = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=4)
    elif kind == "ia3":
        cfg = IA3Config(task_type=TaskType.CAUSAL_LM, init_ia3_weights=False)
    else:
        raise ValueError(kind)
    peft_model = get_peft_model(model, cfg)
    if kind == "prompt_tuning":
        with torch.no_grad():
            for p in peft_model.prompt_encoder.parameters():
                p.normal_(0, 1.0)
    peft_model.save_pretrained(out, safe_serialization=True)
    return out


# ---- headless Chromium for the browser tests (report, review) ---------------------------------
CHROMIUM = "/usr/bin/chromium"
# The network is closed: without the background-networking flags Chromium keeps dialling out.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"{CHROMIUM} missing: `apt-get install -y chromium` (CI's .ci/run installs it)"),
]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright missing: pip install -e '.[dev]'")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def edit_outputs(folder: Path, changes: dict[str, str], suite: str = "mini") -> None:
    """Replace saved model outputs (case id -> text) in a results folder, e.g. to plant a payload."""
    import json

    path = folder / suite / "outputs.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for r in rows:
        if r["case_id"] in changes:
            r["output"] = changes[r["case_id"]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))

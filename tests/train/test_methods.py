"""Every method trains on the tiny model: the loss falls, the artifact reloads to the trained model's
exact logits, and the smoke test (run inside `train`) passes."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import TrainerCallback

from harness.train import METHODS, train
from tests.train.conftest import chat_ids


class LogitsProbe(TrainerCallback):
    """Keeps the in-memory trained model's logits on one fixed prompt, at the end of training."""

    def __init__(self, tokenizer):
        self.ids = chat_ids(tokenizer)
        self.logits = None

    def on_train_end(self, args, state, control, model=None, **kwargs):
        was_training = model.training
        model.eval()
        with torch.no_grad():
            self.logits = model(input_ids=self.ids).logits[:, -self.ids.shape[1]:].float()
        model.train(was_training)


def reloaded_logits(result, cfg, ids):
    """The artifact loaded the way it is used: base + adapter through HFBackend (4-bit base for qlora)."""
    from harness.models import HFBackend

    with torch.no_grad():
        if result.method == "full":
            backend = HFBackend.from_spec(str(result.output_dir), dtype="float32")
            return backend.model(input_ids=ids).logits.float()
        if result.method == "qlora":
            from peft import PeftModel

            from harness.train import load_train_config
            from harness.train.trainers import load_model

            base, *_ = load_model(load_train_config(cfg))
            model = PeftModel.from_pretrained(base, str(result.output_dir)).eval()
            for name, p in model.named_parameters():  # trl trains QLoRA adapters in bf16; mirror it
                if "lora_" in name:
                    p.data = p.data.to(torch.bfloat16)
            return model(input_ids=ids).logits.float()
        backend = HFBackend.from_spec(cfg["base_model"], dtype="float32")  # the weights as trained (fp32)
        backend.load_adapter(result.output_dir)
        return backend.model(input_ids=ids).logits[:, -ids.shape[1]:].float()


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from harness.models import load_tokenizer

    return load_tokenizer(tiny_model_dir)


@pytest.mark.parametrize("method", list(METHODS))
def test_method_trains_reloads_and_passes_smoke(method, tiny_cfg, tokenizer):
    cfg = tiny_cfg(method)
    probe = LogitsProbe(tokenizer)
    result = train(cfg, callbacks=[probe], show_progress=False)

    losses = [h["loss"] for h in result.loss_history if "loss" in h]
    assert len(losses) >= 3 and result.manifest["steps"] == 3
    assert losses[-1] < losses[0], f"{method}: loss did not fall: {losses}"

    # the smoke test ran inside train() and passed
    assert result.smoke["max_logit_diff"] > 1e-4 and result.smoke["n_modules"] > 0

    # the saved artifact is the trained model
    expected = probe.logits
    got = reloaded_logits(result, cfg, probe.ids)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)

    # safetensors only, manifest beside the weights
    folder = result.output_dir
    assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pt"))
    assert list(folder.glob("*.safetensors"))
    manifest = json.loads((folder / "manifest.json").read_text())
    for key in ("method", "base_spec", "base_fingerprint", "config_hash", "data_hashes", "library_versions",
                "loss_history", "wall_time_s", "seed", "steps", "artifact_hash"):
        assert key in manifest, key
    assert manifest["method"] == method and len(manifest["base_fingerprint"]) == 64
    assert [c.name for c in result.checkpoints] == ["checkpoint-2", "checkpoint-3"]


def test_dpo_reference_is_the_adapter_disabled_base(tiny_cfg):
    """No second model copy: trl's DPOTrainer gets ref_model=None and disables the LoRA adapter instead."""
    from harness.train import load_train_config
    from harness.train.trainers import prepare

    prepared = prepare(load_train_config(tiny_cfg("dpo")))
    trainer = prepared.trainer
    assert trainer.ref_model is None
    assert list(trainer.model.peft_config) == ["default"]  # no frozen "ref" copy of the adapter either


@pytest.mark.parametrize("data", ["tiny_chat.jsonl", "tiny_prompt_completion.jsonl"])
def test_sft_labels_cover_only_the_answer_and_keep_end_of_turn(data, tiny_cfg, tokenizer):
    """SmolLM2 pads with its EOS (<|im_end|>): the answer's end-of-turn token must stay in the loss."""
    from harness.train import load_train_config
    from harness.train.trainers import prepare
    from tests.train.conftest import FIXTURES

    prepared = prepare(load_train_config(tiny_cfg("lora", train_data=str(FIXTURES / data))))
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert tokenizer.pad_token_id == im_end  # the trap this test guards
    example = prepared.trainer.train_dataset[0]
    ids, labels = example["input_ids"], example["labels"]
    trained = [i for i, label in enumerate(labels) if label != -100]
    answer = tokenizer.decode([ids[i] for i in trained])
    assert answer.startswith("Blue.") and "<|im_end|>" in answer
    assert labels[trained[0] - 1] == -100  # the prompt is masked
    last_non_newline = max(i for i in trained if tokenizer.decode([ids[i]]).strip())
    assert labels[last_non_newline] == im_end


def _greedy_by_forward(backend, messages, n: int) -> str:
    """Greedy decoding by whole forward passes, no cache: the numbers training optimised."""
    import torch

    ids = torch.tensor([backend.encode(messages)])
    eos = backend._stop_ids()
    new = []
    with torch.no_grad(), backend._active() as model:
        for _ in range(n):
            token = int(model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, -1].argmax())
            if token in eos:
                break
            new.append(token)
            ids = torch.cat([ids, torch.tensor([[token]])], 1)
    return backend.tokenizer.decode(new, skip_special_tokens=True)


def test_prefix_tuning_effect_is_seen_by_the_evals(tiny_cfg, tiny_model_dir):
    """generate() must see the prefix at every step: peft 0.21 dropped it (with the KV cache from
    the first token, without it from the second); the backend's greedy text must equal decoding
    by whole forward passes, the path training optimised."""
    from harness.models import GenerationConfig, HFBackend

    result = train(tiny_cfg("prefix_tuning"), show_progress=False)
    backend = HFBackend.from_spec(str(tiny_model_dir))
    reqs = [[{"role": "user", "content": q}] for q in ("What colour is the sky?", "Name a fruit.", "Hi")]
    gen = GenerationConfig(max_new_tokens=6)
    base = [c.text for c in backend.generate(reqs, gen)]
    backend.load_adapter(result.output_dir)
    tuned = [c.text for c in backend.generate(reqs, gen)]
    assert tuned != base
    assert tuned == [_greedy_by_forward(backend, r, gen.max_new_tokens) for r in reqs]
    assert backend.loglikelihood([(reqs[0], "Blue.")])[0].logprob != pytest.approx(
        HFBackend.from_spec(str(tiny_model_dir)).loglikelihood([(reqs[0], "Blue.")])[0].logprob, abs=1e-6)


def test_lora_layers_limit_the_adapter_to_those_layers(tiny_cfg):
    """`lora.layers` with 'all-linear': every linear module of the named layers, nothing elsewhere."""
    from safetensors.torch import load_file

    result = train(tiny_cfg("lora", lora={"r": 4, "alpha": 8, "target_modules": "all-linear", "layers": [1]}),
                   show_progress=False)
    keys = load_file(str(result.output_dir / "adapter_model.safetensors")).keys()
    layers = {k.split(".layers.")[1].split(".")[0] for k in keys}
    modules = {k.split(".lora_")[0].rsplit(".", 1)[-1] for k in keys}
    assert layers == {"1"}
    assert modules == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert result.smoke["n_modules"] == 7


def test_records_longer_than_max_length_are_reported(tiny_cfg, capsys):
    """trl cuts long records at the end, which drops their answers: the run says so and counts them."""
    # the fixture's records are 39-43 tokens long: four are over 40
    result = train(tiny_cfg("lora", max_length=40, max_steps=1, save_steps=1), show_progress=False)
    assert result.manifest["records_cut"] == 4
    err = capsys.readouterr()
    assert "4 of 8 training records are longer than max_length 40" in err.out + err.err
    assert "raise max_length to 43" in err.out + err.err
    fine = train(tiny_cfg("lora", name="fine", max_length=512, max_steps=1, save_steps=1), show_progress=False)
    assert fine.manifest["records_cut"] == 0


def test_lora_layers_with_named_modules(tiny_cfg):
    from safetensors.torch import load_file

    result = train(tiny_cfg("lora", lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"], "layers": [0]}),
                   show_progress=False)
    keys = load_file(str(result.output_dir / "adapter_model.safetensors")).keys()
    assert {k.split(".layers.")[1].split(".")[0] for k in keys} == {"0"}
    assert {k.split(".lora_")[0].rsplit(".", 1)[-1] for k in keys} == {"q_proj", "v_proj"}

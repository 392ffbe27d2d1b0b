"""The adapter-effect smoke test fails deliberately broken adapters, each with its reason."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from harness.train import AdapterNoEffect, smoke_test


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    from harness.models import HFBackend

    return HFBackend.from_spec(str(tiny_model_dir))


def save_adapter(model_dir, out, cfg):
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), cfg)
    model.save_pretrained(out, safe_serialization=True)
    return out


def lora(targets, init=True):
    from peft import LoraConfig

    return LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=init, task_type="CAUSAL_LM")


def test_a_working_adapter_passes(backend, tiny_model_dir, tmp_path):
    report = smoke_test(backend, save_adapter(tiny_model_dir, tmp_path / "a", lora(["q_proj", "v_proj"], init=False)))
    assert report["max_logit_diff"] > 1e-3 and report["n_modules"] == 4  # 2 layers x (q, v)
    assert report["targets"] == ["q_proj", "v_proj"] and report["peft_type"] == "LORA"
    assert 0 <= report["changed_generations"] <= report["n_prompts"]
    assert backend.active_adapter is None  # the backend is left on the plain base


def test_zero_lora_b_changes_nothing(backend, tiny_model_dir, tmp_path):
    with pytest.raises(AdapterNoEffect, match=r"changes nothing: max \|logit difference\| 0"):
        smoke_test(backend, save_adapter(tiny_model_dir, tmp_path / "zero", lora(["q_proj", "v_proj"], init=True)))


def test_unit_ia3_vectors_change_nothing(tiny_model_dir, tmp_path):
    from peft import IA3Config

    # a base spec: smoke_test loads its own backend (one loaded base holds adapters of one peft type)
    with pytest.raises(AdapterNoEffect, match="IA3 adapter changes nothing"):
        smoke_test(str(tiny_model_dir), save_adapter(tiny_model_dir, tmp_path / "ia3", IA3Config(task_type="CAUSAL_LM")))


def test_a_target_that_matches_no_layer_fails(backend, tiny_model_dir, tmp_path):
    out = save_adapter(tiny_model_dir, tmp_path / "partial", lora(["q_proj", "qkv_proj"], init=False))
    with pytest.raises(AdapterNoEffect, match="qkv_proj matched no layer"):
        smoke_test(backend, out)


def test_an_adapter_targeting_nothing_fails(backend, tiny_model_dir, tmp_path):
    out = save_adapter(tiny_model_dir, tmp_path / "none", lora(["q_proj"], init=False))
    cfg = json.loads((out / "adapter_config.json").read_text())
    cfg["target_modules"] = ["wq"]  # another architecture's name
    (out / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(AdapterNoEffect, match="does not attach to the base model"):
        smoke_test(backend, out)


def test_nan_weights_fail(backend, tiny_model_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    out = save_adapter(tiny_model_dir, tmp_path / "nan", lora(["q_proj"], init=False))
    weights = load_file(out / "adapter_model.safetensors")
    first = sorted(weights)[0]
    weights[first] = torch.full_like(weights[first], float("nan"))
    save_file(weights, out / "adapter_model.safetensors")
    with pytest.raises(AdapterNoEffect, match="NaN"):
        smoke_test(backend, out)


def test_a_full_model_identical_to_its_base_fails(backend, tiny_model_dir, tmp_path):
    copy = shutil.copytree(tiny_model_dir, tmp_path / "copy")
    with pytest.raises(AdapterNoEffect, match="fine-tuned model changes nothing"):
        smoke_test(backend, copy)

"""`harness export CHANNEL --format hf`: a folder `AutoPeftModelForCausalLM` opens as it is, which
computes what base + stored adapter computes, with a model card naming the gate's verdict."""

from __future__ import annotations

import json

import pytest
import torch

from harness.cli import main
from tests.pipeline.test_pipeline import write_run


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.mark.parametrize("kind", ["local", "hub"])
def test_hf_export_opens_with_auto_peft_and_computes_the_gated_model(tiny_model_dir, tmp_path, home, capsys, monkeypatch,
                                                                    kind):
    """A local base is named by its folder; a hub base `org/name@tag` (which peft cannot open) by
    its id and the commit the run resolved, which AutoPeft loads from the hub cache offline."""
    import yaml
    from peft import AutoPeftModelForCausalLM

    from harness.models import HFBackend
    from harness.pipeline import run
    from harness.registry import Registry
    from tests.models.test_specs import COMMIT, build_hub_cache

    cfg = write_run(tmp_path, tiny_model_dir)
    if kind == "hub":
        from huggingface_hub import constants

        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(build_hub_cache(tmp_path / "hub", tiny_model_dir)))
        c = yaml.safe_load(cfg.read_text())
        c["base_model"] = "tinyorg/tiny-llama@v1"
        cfg.write_text(yaml.safe_dump(c))
    reg = Registry(home / "registry.db")
    s = run(cfg, reg)
    assert s["promoted"] is True
    opt = ["--registry", str(reg.path)]
    stored = json.loads((reg.adapter_path(s["adapter_hash"]) / "adapter_config.json").read_text())

    out = tmp_path / "hf"
    assert main(["export", "production", "--format", "hf", "--out", str(out), "--json", *opt]) == 0
    entry = json.loads(capsys.readouterr().out)
    expect = (str(tiny_model_dir.resolve()), None) if kind == "local" else ("tinyorg/tiny-llama", COMMIT)
    assert (entry["base_model_name_or_path"], entry["revision"]) == expect and entry["gate_passed"] is True
    names = {p.name for p in out.iterdir()}
    assert {"README.md", "adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= names
    assert "manifest.json" not in names and not [n for n in names if n.endswith((".bin", ".pt"))]

    # AutoPeft opens it with nothing else given, and it is the model the gate passed
    auto = AutoPeftModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    gated = HFBackend.from_spec(str(tiny_model_dir), dtype="float32")
    gated.load_adapter(s["adapter"])
    ids = gated.tokenizer.apply_chat_template([{"role": "user", "content": "Describe thing number 3 of the inventory."}],
                                              add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        assert torch.equal(auto(input_ids=ids).logits, gated.model(input_ids=ids).logits)

    if kind == "hub":  # a hub base: the stored adapter opens as it is too, named by repo id and commit
        assert (stored["base_model_name_or_path"], stored["revision"]) == ("tinyorg/tiny-llama", COMMIT)
        own = AutoPeftModelForCausalLM.from_pretrained(str(reg.adapter_path(s["adapter_hash"])), dtype=torch.float32).eval()
        with torch.no_grad():
            assert torch.equal(own(input_ids=ids).logits, gated.model(input_ids=ids).logits)
        assert reg.get_run(s["run_id"])["config"]["base_model"] == "tinyorg/tiny-llama@v1"  # the spec as written
    card = (out / "README.md").read_text()
    assert card.startswith("---\nbase_model: ") and "library_name: peft" in card
    assert f"adapter hash: `{s['adapter_hash']}`" in card and f"run: `{s['run_id']}`" in card
    assert "gate: **PASSED** under policy `tiny`" in card and "| ✅ pass | max_drop | `mini/mc` |" in card
    # the stored adapter is untouched: still verified, still naming the base by the run's spec
    assert json.loads((reg.adapter_path(s["adapter_hash"]) / "adapter_config.json").read_text()) == stored

    # a folder that is not empty is refused, nothing written into it
    assert main(["export", "production", "--format", "hf", "--out", str(out), *opt]) == 2
    assert "is not an empty folder" in capsys.readouterr().err
    assert main(["export", "production", "--format", "hf", *opt]) == 2
    assert "needs --out DIR" in capsys.readouterr().err

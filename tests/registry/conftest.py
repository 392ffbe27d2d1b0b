"""Registry fixtures: a file-backed registry in a temp folder and fake (but real safetensors)
PEFT adapter folders. No model is loaded: the store only hashes files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

BASE = "f" * 64
OTHER_BASE = "e" * 64


def fake_adapter(folder: Path, seed: int, rank: int = 4) -> Path:
    """adapter_config.json + adapter_model.safetensors with weights that depend on `seed`."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "r": rank, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}, indent=1))
    rng = np.random.default_rng(seed)
    save_file({
        "base_model.model.layers.0.self_attn.q_proj.lora_A.weight": rng.standard_normal((rank, 64)).astype(np.float32),
        "base_model.model.layers.0.self_attn.q_proj.lora_B.weight": rng.standard_normal((64, rank)).astype(np.float32),
    }, str(folder / "adapter_model.safetensors"))
    return folder


def trained_run(reg, tmp_path: Path, seed: int, *, passed: bool | None = True, base: str = BASE,
                accuracy: float = 0.8) -> str:
    """A finished run with a stored adapter, a candidate eval and (unless None) a gate decision."""
    reg.register_base_model("smollm2-135m-instruct" if base == BASE else "other-base", base)
    run_id = reg.create_run({"method": "lora", "lr": 1e-4, "seed": seed}, seeds={"train": seed})
    adapter = reg.add_adapter(fake_adapter(tmp_path / f"src-{seed}", seed), method="lora", base_fingerprint=base,
                              run_id=run_id)
    reg.record_eval(run_id, role="candidate", suite="extraction", suite_hash="s" * 64,
                    metrics={"extraction/exact": {"value": accuracy, "n": 50, "ci": [0.7, 0.9], "kind": "rate"}},
                    results_path=str(tmp_path / "results"), results_hash="r" * 64, model_fingerprint=base,
                    adapter_hash=adapter)
    if passed is not None:
        reg.record_gate(run_id, {"passed": passed, "rules": [{"name": "extraction/exact max_drop 0.02", "passed": passed}]},
                        passed)
    reg.update_run(run_id, status="finished")
    return run_id


@pytest.fixture
def reg(tmp_path):
    from harness.registry import Registry

    r = Registry(tmp_path / "registry.db", store_root=tmp_path / "store")
    yield r
    r.close()

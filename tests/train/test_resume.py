"""Checkpoints, resume after an interrupted run, run-folder guards and determinism."""

from __future__ import annotations

import json

import pytest
from transformers import TrainerCallback

from harness.errors import ConfigError
from harness.models import HFBackend, adapter_fingerprint
from harness.train import checkpoints_of, train


class InterruptAfter(TrainerCallback):
    """Raises KeyboardInterrupt (as Ctrl-C would) once `step` optimizer steps are done."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


@pytest.mark.parametrize("grouped", [False, True], ids=["random", "group_by_length"])
def test_interrupted_run_resumes_to_the_same_adapter(tiny_cfg, tiny_model_dir, grouped):
    cfg = tiny_cfg("lora", name="interrupted", max_steps=5, save_steps=2, group_by_length=grouped)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callbacks=[InterruptAfter(3)], show_progress=False)
    assert [c.name for c in checkpoints_of(cfg["output_dir"])] == ["checkpoint-2"]

    resumed = train(cfg, resume=True, show_progress=False)
    assert resumed.manifest["steps"] == 5 and resumed.manifest["resumed_from"] == "checkpoint-2"
    assert [c.name for c in resumed.checkpoints] == ["checkpoint-2", "checkpoint-4", "checkpoint-5"]
    assert [h["step"] for h in resumed.loss_history if "loss" in h] == [1, 2, 3, 4, 5]
    assert (resumed.output_dir / "adapter_model.safetensors").is_file()

    # optimizer, scheduler, RNG and data order are restored: the result equals an uninterrupted run
    straight = train(tiny_cfg("lora", name="straight", max_steps=5, save_steps=2, group_by_length=grouped),
                     show_progress=False)
    assert resumed.artifact_hash == straight.artifact_hash

    # every checkpoint is an adapter the evals can load
    backend = HFBackend.from_spec(str(tiny_model_dir))
    backend.load_adapter(resumed.checkpoints[0])
    assert backend.active_adapter is not None


def test_run_folder_guards(tiny_cfg):
    cfg = tiny_cfg("lora", name="guarded", max_steps=2)
    train(cfg, show_progress=False)
    with pytest.raises(ConfigError, match="already holds an earlier run: pass --resume"):
        train(cfg, show_progress=False)
    with pytest.raises(ConfigError, match="holds a run of a different config"):
        train({**cfg, "seed": 1}, resume=True, show_progress=False)


def test_same_config_twice_gives_the_same_adapter_hash(tiny_cfg):
    a = train(tiny_cfg("lora", name="a"), show_progress=False)
    b = train(tiny_cfg("lora", name="b"), show_progress=False)
    assert a.artifact_hash == b.artifact_hash == adapter_fingerprint(a.output_dir)
    c = train(tiny_cfg("lora", name="c", seed=1), show_progress=False)
    assert c.artifact_hash != a.artifact_hash


def test_adapter_config_is_byte_stable(tiny_cfg, tiny_model_dir):
    """peft keeps target modules in a set whose order changes per process; the saved list is sorted."""
    result = train(tiny_cfg("lora", name="stable", max_steps=1), show_progress=False)
    saved = json.loads((result.output_dir / "adapter_config.json").read_text())
    assert saved["target_modules"] == sorted(saved["target_modules"]) and len(saved["target_modules"]) == 14
    assert saved["base_model_name_or_path"] == str(tiny_model_dir)
    for ckpt in result.checkpoints:
        assert json.loads((ckpt / "adapter_config.json").read_text())["target_modules"] == saved["target_modules"]

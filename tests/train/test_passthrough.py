"""trl and peft settings passed through a training config: checked against trl's and peft's own
dataclasses, and reaching the trainer and the adapter; `report_to` logging to a real tracker."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from transformers import TrainerCallback

from harness.errors import ConfigError
from harness.train import load_train_config, train
from tests.train.test_config import run_cli


class ArgsProbe(TrainerCallback):
    """Keeps the trainer's arguments and every learning rate it logged."""

    def __init__(self):
        self.args, self.lrs = None, []

    def on_train_begin(self, args, state, control, **kwargs):
        self.args = args

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "learning_rate" in logs:
            self.lrs.append(logs["learning_rate"])


def test_trl_and_peft_settings_reach_the_trainer_and_the_adapter(tiny_cfg):
    from safetensors.torch import load_file

    probe = ArgsProbe()
    cfg = tiny_cfg("lora", max_steps=4, save_steps=4, gradient_accumulation_steps=2,
                   trl={"warmup_ratio": 0.5, "lr_scheduler_type": "constant_with_warmup", "weight_decay": 0.1,
                        "max_grad_norm": 0.5},
                   peft={"use_dora": True, "use_rslora": True})
    result = train(cfg, callbacks=[probe], show_progress=False)
    args = probe.args
    assert args.warmup_steps == 0.5  # transformers 5's field for a warmup ratio
    assert str(args.lr_scheduler_type.value) == "constant_with_warmup"
    assert (args.weight_decay, args.max_grad_norm, args.gradient_accumulation_steps) == (0.1, 0.5, 2)
    # half the 4 steps warm up, then the rate stays at the peak
    peak = cfg["learning_rate"]
    assert probe.lrs[0] < peak and probe.lrs[-1] == pytest.approx(peak)
    stored = json.loads((result.output_dir / "adapter_config.json").read_text())
    assert stored["use_dora"] is True and stored["use_rslora"] is True
    keys = load_file(str(result.output_dir / "adapter_model.safetensors")).keys()
    assert any("lora_magnitude_vector" in k for k in keys), "DoRA trains a magnitude vector per module"
    assert result.smoke["n_modules"] > 0


def test_the_same_config_without_the_sections_trains_plain_lora(tiny_cfg):
    from safetensors.torch import load_file

    result = train(tiny_cfg("lora", max_steps=1, save_steps=1), show_progress=False)
    assert json.loads((result.output_dir / "adapter_config.json").read_text())["use_dora"] is False
    assert not any("magnitude" in k for k in load_file(str(result.output_dir / "adapter_model.safetensors")))


def test_report_to_tensorboard_writes_event_files(tiny_cfg):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_cfg("lora", report_to="tensorboard", max_steps=2, save_steps=2)
    result = train(cfg, show_progress=False)
    events = sorted(Path(cfg["output_dir"]).rglob("events.out.tfevents.*"))  # trainer's runs/<date_host>/
    assert events, "no TensorBoard event file under the run folder"
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    losses = [e.value for e in acc.Scalars("train/loss")]
    assert len(losses) == 2 and all(v > 0 for v in losses)
    assert result.manifest["config"]["report_to"] == ["tensorboard"]


def problems(cfg: dict) -> str:
    with pytest.raises(ConfigError) as e:
        load_train_config(cfg)
    return str(e.value)


def test_settings_are_checked_against_trl_and_peft_dataclasses(tiny_cfg):
    text = problems(tiny_cfg("lora", trl={"warmup_ratoi": 0.1, "learning_rate": 1.0, "push_to_hub": True,
                                          "weight_decay": "heavy"},
                             peft={"use_dora": "yes please", "r": 4, "bias": "maybe", "task_type": "SEQ_CLS"}))
    assert "field 'trl.warmup_ratoi': not a setting of trl's SFTConfig (did you mean 'warmup_steps'?)" in text
    assert "field 'trl.learning_rate': the harness config sets it: use its field 'learning_rate'" in text
    assert "field 'trl.push_to_hub': the harness sets it (publish with harness export" in text
    assert "field 'trl.weight_decay': Input should be a valid number" in text
    assert "field 'peft.use_dora': Input should be a valid boolean" in text
    assert "field 'peft.r': the harness config sets it: use its field 'lora.r'" in text
    assert "field 'peft.bias': Input should be 'none', 'all' or 'lora_only'" in text
    assert "field 'peft.task_type': the harness sets it" in text


def test_values_the_dataclass_itself_refuses_are_reported(tiny_cfg):
    text = problems(tiny_cfg("lora", trl={"lr_scheduler_type": "cosinus"}))
    assert "field 'trl': SFTConfig refuses these settings: cosinus is not a valid SchedulerType" in text
    assert "field 'trl.warmup_ratio': a ratio of all steps" in problems(tiny_cfg("lora", trl={"warmup_ratio": 3}))


def test_dpo_takes_dpo_config_fields_and_sft_does_not(tiny_cfg):
    assert load_train_config(tiny_cfg("dpo", trl={"loss_type": ["ipo"]})).trl == {"loss_type": ["ipo"]}
    assert "not a setting of trl's SFTConfig" in problems(tiny_cfg("lora", trl={"rpo_alpha": 0.1, "sync_ref_model": True}))
    assert "use its field 'dpo_beta'" in problems(tiny_cfg("dpo", trl={"beta": 0.2}))


def test_a_setting_at_the_top_level_is_pointed_to_its_section(tiny_cfg):
    text = problems(tiny_cfg("lora", warmup_steps=10, use_dora=True))
    assert "field 'warmup_steps': a setting of trl's SFTConfig: put it under 'trl:'" in text
    assert "field 'use_dora': a setting of peft's LoraConfig: put it under 'peft:'" in text
    assert "field 'peft': method 'full' trains every weight" in problems(tiny_cfg("full", peft={"use_dora": True}))


def test_report_to_names_trackers_and_what_is_missing(tiny_cfg):
    from transformers.integrations import get_available_reporting_integrations

    text = problems(tiny_cfg("lora", report_to=["tensorbord"]))
    assert "unknown tracker 'tensorbord' (did you mean 'tensorboard'?)" in text
    missing = next(t for t in ("mlflow", "wandb", "comet_ml", "neptune") if t not in get_available_reporting_integrations())
    assert f"{missing} is not installed here: pip install" in problems(tiny_cfg("lora", report_to=missing))


def test_where_a_run_logs_is_not_part_of_what_it_trains(tiny_cfg):
    plain = load_train_config(tiny_cfg("lora")).config_hash()
    assert load_train_config(tiny_cfg("lora", report_to="tensorboard")).config_hash() == plain
    assert load_train_config(tiny_cfg("lora", trl={"weight_decay": 0.1})).config_hash() != plain
    assert load_train_config(tiny_cfg("lora", peft={"use_dora": True})).config_hash() != plain


def test_train_settings_lists_the_dataclass_fields_with_their_own_help():
    from trl import SFTConfig

    out = run_cli("train", "--settings", "--json")
    listed = json.loads(out.stdout)
    trl_names = {s["name"]: s for s in listed["trl"]["settings"]}
    help_of = {f.name: " ".join(str(f.metadata.get("help", "")).split()) for f in dataclasses.fields(SFTConfig)}
    assert trl_names["warmup_steps"]["help"] == help_of["warmup_steps"]
    assert "learning_rate" not in trl_names and "push_to_hub" not in trl_names and "output_dir" not in trl_names
    assert listed["peft"]["class"] == "LoraConfig"
    assert "use_dora" in {s["name"] for s in listed["peft"]["settings"]}
    assert "r" not in {s["name"] for s in listed["peft"]["settings"]}
    full = json.loads(run_cli("train", "--settings", "full", "--json").stdout)
    assert "peft" not in full and "packing" in {s["name"] for s in full["trl"]["settings"]}

"""trl and peft settings a training config passes through, validated against their own dataclasses.

`trl:` takes fields of trl's `SFTConfig` (`DPOConfig` for dpo), `peft:` fields of the method's
peft config (`LoraConfig` for lora, qlora and dpo; `LoKrConfig`, `IA3Config`, ...). Which fields
exist, their types and their help text come from those dataclasses, so a new trl release brings
its settings with it. Refused, with the reason: fields the harness config already sets (use its
own field: one value, one place), fields the harness must own for its guarantees (checkpoints,
evaluation schedule, device, safetensors), and fields that would load remote code or push to the
hub. `report_to` is the config's own field, checked against the trackers that are installed.

trl and peft are imported only when a config uses these sections, so validating the usual config
stays instant.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from typing import Any

# trl fields a harness field sets: use that field instead
TRL_FROM_HARNESS = {
    "output_dir": "output_dir", "seed": "seed", "data_seed": "seed", "max_steps": "max_steps",
    "num_train_epochs": "num_epochs", "learning_rate": "learning_rate",
    "per_device_train_batch_size": "batch_size", "per_device_eval_batch_size": "batch_size",
    "gradient_accumulation_steps": "gradient_accumulation_steps", "max_length": "max_length",
    "train_sampling_strategy": "group_by_length", "logging_steps": "logging_steps",
    "save_steps": "save_steps", "eval_steps": "eval_steps", "bf16": "precision", "fp16": "precision",
    "gradient_checkpointing": "gradient_checkpointing", "report_to": "report_to", "beta": "dpo_beta",
}
# trl fields the harness owns, and why
TRL_OWNED = {
    "save_strategy": "checkpoints every save_steps are what resume and checkpoint selection use",
    "save_total_limit": "checkpoint selection needs every saved checkpoint",
    "save_only_model": "resume needs the optimizer state in each checkpoint",
    "load_best_model_at_end": "the harness selects the checkpoint itself (off the gated cases)",
    "metric_for_best_model": "the harness selects the checkpoint itself (off the gated cases)",
    "greater_is_better": "the harness selects the checkpoint itself (off the gated cases)",
    "eval_strategy": "validation runs at the start, every eval_steps and at the end",
    "eval_on_start": "validation runs at the start, every eval_steps and at the end",
    "do_train": "the harness decides what runs", "do_eval": "the harness decides what runs",
    "do_predict": "the harness decides what runs",
    "use_cpu": "the harness places the model (CUDA when present, else the CPU)",
    "disable_tqdm": "the harness draws its own progress", "logging_first_step": "the harness logs the first step",
    "resume_from_checkpoint": "use harness train --resume / harness run --resume",
    "restore_callback_states_from_checkpoint": "use harness train --resume / harness run --resume",
    "ignore_data_skip": "a resumed run must skip exactly the batches it trained on",
    "remove_unused_columns": "the harness builds the dataset's columns",
    "dataset_text_field": "the harness builds the dataset (messages or prompt/completion)",
    "dataset_kwargs": "the harness builds the dataset (messages or prompt/completion)",
    "completion_only_loss": "the loss covers the answer only, end-of-turn token included",
    "assistant_only_loss": "the loss covers the answer only, end-of-turn token included",
    "trust_remote_code": "remote code never runs (safetensors and the model's own classes only)",
    "model_init_kwargs": "the harness loads the base model (safetensors, no remote code)",
    "push_to_hub": "publish with harness export CHANNEL --format hf instead",
    "precompute_ref_log_probs": "the reference is the base with the adapter disabled",
}
TRL_OWNED_PREFIXES = {"hub_": "publish with harness export CHANNEL --format hf instead"}
# transformers 5 folded warmup_ratio into warmup_steps (a value below 1 is a ratio of all steps)
TRL_RENAMED = {"warmup_ratio": "warmup_steps"}

# peft fields a harness field sets
PEFT_FROM_HARNESS = {
    "r": "lora.r", "lora_alpha": "lora.alpha", "alpha": "lora.alpha", "lora_dropout": "lora.dropout",
    "module_dropout": "lora.dropout", "target_modules": "lora.target_modules", "layers_to_transform": "lora.layers",
    "num_virtual_tokens": "num_virtual_tokens",
}
PEFT_OWNED = {
    "task_type": "the harness trains causal language models", "peft_type": "set by the method",
    "base_model_name_or_path": "the stored adapter names its base by the run's spec",
    "revision": "the stored adapter names its base by the run's spec",
    "inference_mode": "set by peft when the adapter is saved", "auto_mapping": "set by peft",
    "peft_version": "set by peft",
}

def trackers() -> list[str]:
    """The names transformers' `report_to` takes (its own table of integrations)."""
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    return list(INTEGRATION_TO_CALLBACK)


def trl_class(family: str):
    if family == "dpo":
        from trl import DPOConfig

        return DPOConfig
    from trl import SFTConfig

    return SFTConfig


def peft_class(cfg):
    """The peft config class the method trains, or None (full fine-tuning)."""
    from harness.train.methods import METHODS

    built = METHODS[cfg.method].build(cfg)
    return None if built is None else type(built)


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    type: str
    default: Any
    help: str


def _type_name(t) -> str:
    return getattr(t, "__name__", None) or str(t).replace("typing.", "")


def settings(cls, from_harness: dict, owned: dict, prefixes: dict | None = None) -> list[Setting]:
    """The fields of `cls` a config may set, with their help text from the dataclass metadata."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.name.startswith("_") or f.name in from_harness or f.name in owned or not f.init:
            continue
        if any(f.name.startswith(p) for p in (prefixes or {})):
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        out.append(Setting(f.name, _type_name(hints.get(f.name, Any)), default,
                           " ".join(str(f.metadata.get("help", "")).split())))
    return out


def _check_value(name: str, value, annotation) -> str | None:
    """Why `value` does not fit the field's annotation, or None."""
    from pydantic import TypeAdapter, ValidationError

    try:
        TypeAdapter(annotation).validate_python(value, strict=False)
    except ValidationError as e:
        return e.errors()[0]["msg"]
    except Exception:  # an annotation pydantic cannot build a validator for: the dataclass checks it
        return None
    if isinstance(value, bool) and annotation in (int, float):
        return f"{str(value).lower()} is a yes/no value; this field takes a number"
    return None


def _unknown(where: str, section: str, key: str, cls, known: list[str], from_harness: dict) -> str:
    msg = f"{where}: field '{section}.{key}': not a setting of {cls.__module__.split('.')[0]}'s {cls.__name__}"
    close = difflib.get_close_matches(key, known + list(from_harness), n=1)
    if close:
        msg += f" (did you mean {close[0]!r}?)"
    return msg + ": remove it or fix its spelling (harness train --settings lists them)"


def section_problems(where: str, section: str, values: dict, cls, from_harness: dict, owned: dict,
                     prefixes: dict | None = None) -> list[str]:
    """Every problem of one pass-through section: unknown keys, keys the harness sets, wrong types."""
    hints = typing.get_type_hints(cls)
    known = [s.name for s in settings(cls, from_harness, owned, prefixes)]
    problems = []
    for key, value in values.items():
        target = TRL_RENAMED.get(key, key) if section == "trl" else key
        loc = f"{where}: field '{section}.{key}'"
        if key in from_harness:
            problems.append(f"{loc}: the harness config sets it: use its field '{from_harness[key]}' instead")
        elif key in owned:
            problems.append(f"{loc}: the harness sets it ({owned[key]}): remove it")
        elif any(key.startswith(p) for p in (prefixes or {})):
            problems.append(f"{loc}: the harness sets it ({next(v for p, v in prefixes.items() if key.startswith(p))}): "
                            "remove it")
        elif target not in known:
            problems.append(_unknown(where, section, key, cls, known, from_harness))
        elif key == "warmup_ratio" and not (isinstance(value, (int, float)) and 0 <= value < 1):
            problems.append(f"{loc}: a ratio of all steps, at least 0 and below 1 (transformers 5 reads it as "
                            "warmup_steps below 1)")
        elif (why := _check_value(target, value, hints.get(target, Any))) is not None:
            problems.append(f"{loc}: {why}")
    return problems


def sections(method: str) -> dict[str, tuple[type, list[Setting]]]:
    """{'trl': (its config class, settings), 'peft': (...)} for a method (no peft for full)."""
    from harness.train.config import TrainConfig
    from harness.train.methods import METHODS

    cls = trl_class(METHODS[method].family)
    out = {"trl": (cls, settings(cls, TRL_FROM_HARNESS, TRL_OWNED, TRL_OWNED_PREFIXES))}
    peft_cls = peft_class(TrainConfig.model_construct(method=method, lora=TrainConfig.model_fields["lora"].get_default(
        call_default_factory=True), num_virtual_tokens=16))
    if peft_cls is not None:
        out["peft"] = (peft_cls, settings(peft_cls, PEFT_FROM_HARNESS, PEFT_OWNED))
    return out


def placement(key: str, method) -> tuple[str, str] | None:
    """('trl', "trl's SFTConfig") when `key` is a setting of that section for the method (lora
    when the method is unknown), else None."""
    from harness.train.methods import METHODS

    for name, (cls, found) in sections(method if method in METHODS else "lora").items():
        if (TRL_RENAMED.get(key, key) if name == "trl" else key) in {s.name for s in found}:
            return name, f"{cls.__module__.split('.')[0]}'s {cls.__name__}"
    return None


def trl_kwargs(values: dict) -> dict:
    """The `trl:` section as keyword arguments of the trl config (renamed fields mapped)."""
    return {TRL_RENAMED.get(k, k): v for k, v in values.items()}


def report_to_problems(where: str, report_to: list[str]) -> list[str]:
    """Unknown trackers, and trackers that are not installed (with the command that installs them)."""
    if report_to == ["none"] or not report_to:
        return []
    from transformers.integrations import get_available_reporting_integrations

    available = set(get_available_reporting_integrations())
    problems = []
    for name in report_to:
        if name == "none" and len(report_to) > 1:
            problems.append(f"{where}: field 'report_to': 'none' with other trackers: give either")
        elif name not in trackers():
            close = difflib.get_close_matches(name, trackers(), n=1)
            problems.append(f"{where}: field 'report_to': unknown tracker {name!r}"
                            f"{f' (did you mean {close[0]!r}?)' if close else ''}: use one of {', '.join(trackers())}, or none")
        elif name not in available:
            package = {"comet_ml": "comet-ml", "azure_ml": "azureml-core"}.get(name, name)
            problems.append(f"{where}: field 'report_to': {name} is not installed here: pip install {package}")
    return problems


def check(where: str, cfg) -> list[str]:
    """Every problem of a config's `trl:`, `peft:` and `report_to` (empty when none are used)."""
    from harness.train.methods import METHODS

    problems = report_to_problems(where, cfg.report_to)
    if cfg.trl:
        problems += section_problems(where, "trl", cfg.trl, trl_class(METHODS[cfg.method].family),
                                     TRL_FROM_HARNESS, TRL_OWNED, TRL_OWNED_PREFIXES)
    if cfg.peft:
        cls = peft_class(cfg)
        if cls is None:
            problems.append(f"{where}: field 'peft': method 'full' trains every weight and has no peft config: remove it")
        else:
            problems += section_problems(where, "peft", cfg.peft, cls, PEFT_FROM_HARNESS, PEFT_OWNED)
    if problems:
        return problems
    # the values each field took alone may still conflict: build both configs as training will
    return _build_problems(where, cfg)


def _build_problems(where: str, cfg) -> list[str]:
    import tempfile
    import warnings

    from harness.train.methods import METHODS

    problems = []
    if cfg.trl or cfg.report_to != ["none"]:
        from harness.train.trainers import training_args

        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # transformers' renames, which training silences too
            probe = cfg.model_copy(update={"output_dir": tmp})
            try:
                training_args(probe, trl_class(METHODS[cfg.method].family))
            except (TypeError, ValueError) as e:
                problems.append(f"{where}: field 'trl': {trl_class(METHODS[cfg.method].family).__name__} refuses "
                                f"these settings: {str(e).splitlines()[0]}")
    if cfg.peft:
        try:
            peft_config(cfg)
        except (TypeError, ValueError) as e:
            problems.append(f"{where}: field 'peft': {peft_class(cfg).__name__} refuses these settings: "
                            f"{str(e).splitlines()[0]}")
    return problems


def peft_config(cfg):
    """The method's peft config with the `peft:` section applied (None for full fine-tuning)."""
    from harness.train.methods import METHODS

    built = METHODS[cfg.method].build(cfg)
    if built is None or not cfg.peft:
        return built
    return dataclasses.replace(built, **cfg.peft)

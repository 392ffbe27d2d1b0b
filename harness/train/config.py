"""One validated config for a training run.

`load_train_config` reads a YAML file (or a dict, or a `TrainConfig`), validates every field,
checks that the base model folder and the dataset files exist and that every record has the shape
the method trains on, and raises one `ConfigError` listing every problem, each naming the file,
line and field with the fix, before any model loads. Relative paths in a YAML file are relative to
the file's folder; in a dict, to `base_dir` (default: the working directory).
"""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.configmodel import ConfigModel, field_problems
from harness.errors import ConfigError
from harness.files import config_path, expand, exists, is_dir, is_file, load_mapping
from harness.models.specs import DEFAULT_MODEL
from harness.train.methods import METHODS

MAX_PROBLEMS_PER_FILE = 10
SHAPES = {"sft": "{messages} or {prompt, completion}", "dpo": "{prompt, chosen, rejected}"}


class LoraSettings(ConfigModel):
    """Adapter shape for lora, qlora, dpo (LoRA) and lokr."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(8, gt=0, description="rank of the low-rank update")
    alpha: float = Field(16, gt=0, description="scale of the update: it is multiplied by alpha / r")
    dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the adapter's input (lokr: module dropout)")
    target_modules: str | list[str] = Field(
        "all-linear",
        description="'all-linear' (every linear layer except the output head), a list of module names "
        "such as [q_proj, v_proj], or one regular expression",
    )
    layers: list[int] | None = Field(
        None,
        description="transformer layers (0-based) that get adapters, e.g. the top half; the backward pass stops at "
        "the lowest one, so steps are cheaper (lora, qlora, dpo; default: every layer)",
    )


class TrainConfig(ConfigModel):
    """A training run: base model, method, data, hyper-parameters, seed and output folder."""

    model_config = ConfigDict(extra="forbid")

    base_model: str = Field(DEFAULT_MODEL, description="model spec: alias, local folder (safetensors) or hub id")
    method: str = Field(..., description="training method: " + ", ".join(METHODS))
    train_data: Path = Field(..., description="training records in JSONL, Parquet, CSV/TSV or JSON: {messages} or "
                             "{prompt, completion}; {prompt, chosen, rejected} for dpo; other shapes via data_format; "
                             "a hub dataset's file as hf://datasets/org/name@revision/train.parquet")
    data_format: str | dict[str, str] | None = Field(None, description="shape of train_data and validation_data when "
                                                     "not the harness's own: sharegpt, alpaca, or column renames "
                                                     "{field: column}, e.g. {prompt: question, completion: answer}")
    validation_data: Path | None = Field(None, description="records of the same format and shape; validation loss is "
                                         "measured before training, every eval_steps and after the last step")
    output_dir: Path | None = Field(None, description="run folder for checkpoints and the final adapter "
                                    "(default: runs/<method>-<config hash>)")
    seed: int = Field(0, description="seed for adapter initialisation, data order and dropout")
    max_steps: int | None = Field(None, gt=0, description="optimizer steps to train; overrides num_epochs")
    num_epochs: float = Field(1.0, gt=0, description="passes over the training data when max_steps is not set")
    learning_rate: float | None = Field(None, gt=0, description="peak learning rate (linear decay); default per "
                                        "method: " + ", ".join(f"{m.name} {m.learning_rate:g}" for m in METHODS.values()))
    batch_size: int = Field(8, gt=0, description="records per optimizer micro-batch")
    gradient_accumulation_steps: int = Field(1, gt=0, description="micro-batches summed per optimizer step")
    group_by_length: bool = Field(False, description="batch records of similar length together (shuffled groups): "
                                  "less padding, so faster steps on short-and-long data")
    max_length: int = Field(512, gt=0, description="tokens per record; longer records are cut at the end")
    lora: LoraSettings = Field(default_factory=LoraSettings, description="adapter shape (lora, qlora, dpo, lokr)")
    num_virtual_tokens: int = Field(16, gt=0, description="virtual tokens (prompt_tuning, prefix_tuning)")
    dpo_beta: float = Field(0.1, gt=0, description="DPO temperature: how far the policy may move from the reference")
    eval_steps: int | None = Field(None, gt=0, description="validation loss every N steps (needs validation_data); "
                                   "default: only before training and after the last step")
    save_steps: int = Field(100, gt=0, description="checkpoint every N steps (and after the last step); "
                            "resume continues from the latest")
    logging_steps: int = Field(10, gt=0, description="log the training loss every N steps")
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="dtype the base model trains in "
                                                              "(qlora: the 4-bit compute dtype)")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="arithmetic of the forward and backward passes (autocast); weights and optimizer state "
        "stay in `dtype`. auto: bf16 on CPUs with AMX/AVX512-BF16 and on bf16 GPUs (a LoRA step on the demo "
        "config 1.3x faster on a 2-core Xeon), else fp32")
    attention: Literal["auto", "sdpa", "eager"] = Field(
        "auto", description="attention implementation while training. auto: the model's own (sdpa for most); eager: "
        "plain matmuls and a softmax, faster for short records on a CPU (a LoRA step on the demo config 1.1x faster "
        "on 2 cores, bench/train_step.py) but memory quadratic in max_length")
    gradient_checkpointing: bool = Field(False, description="recompute activations in the backward pass to save "
                                         "memory (slower; not with prefix_tuning)")
    trl: dict[str, Any] = Field(default_factory=dict, description="more settings of trl's SFTConfig (DPOConfig for "
                                "dpo), checked against it: warmup_steps, lr_scheduler_type, weight_decay, optim, "
                                "packing, ... (harness train --settings lists them with trl's help)")
    peft: dict[str, Any] = Field(default_factory=dict, description="more settings of the method's peft config, "
                                 "checked against it: use_dora, use_rslora, init_lora_weights, ... (harness train "
                                 "--settings lists them with peft's help)")
    report_to: list[str] = Field(default_factory=lambda: ["none"], description="experiment trackers the trainer "
                                 "logs to: tensorboard, mlflow, wandb, ... (installed ones), or none")

    @field_validator("report_to", mode="before")
    @classmethod
    def _one_tracker(cls, v):
        return [v] if isinstance(v, str) else v

    @field_validator("data_format")
    @classmethod
    def _known_format(cls, v):
        from harness.data.tables import check_data_format

        if (why := check_data_format(v)) is not None:
            raise ValueError(why)
        return v

    @field_validator("method")
    @classmethod
    def _known_method(cls, v: str) -> str:
        if v not in METHODS:
            close = difflib.get_close_matches(v, list(METHODS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown method {v!r}{hint}: use one of {', '.join(METHODS)}")
        return v

    @model_validator(mode="after")
    def _method_defaults(self) -> TrainConfig:
        if self.learning_rate is None:
            self.learning_rate = METHODS[self.method].learning_rate
        return self

    @property
    def family(self) -> str:
        """`sft` or `dpo`: which trl trainer runs this method."""
        return METHODS[self.method].family

    def data_hashes(self) -> dict[str, str | None]:
        from harness.data import data_hash

        return {
            "train": data_hash(self.train_data),
            "validation": data_hash(self.validation_data) if self.validation_data else None,
        }

    def config_hash(self) -> str:
        """sha256 of everything that defines the run: fields (paths replaced by file hashes), not output_dir."""
        # where the run logs (report_to) does not change what it trains
        body = self.model_dump(mode="json", exclude={"output_dir", "train_data", "validation_data", "report_to"})
        for key in ("trl", "peft"):  # configs written before these sections hash as they did
            if not body[key]:
                del body[key]
        body["data"] = self.data_hashes()
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# ---- loading -----------------------------------------------------------------------------------
def _read_source(source, base_dir) -> tuple[dict, str, Path]:
    """(raw dict, name used in messages, folder relative paths start from)."""
    if isinstance(source, TrainConfig):
        return source.model_dump(mode="python"), "config", Path(base_dir or ".")
    if isinstance(source, dict):
        return dict(source), "config", Path(base_dir or ".")
    path = Path(source)
    if not is_file(path):
        raise ConfigError(f"training config {str(path)!r} does not exist: give a YAML file (see README, Training)")
    raw = load_mapping(path, "the training config")
    return raw, str(path), Path(base_dir) if base_dir else path.parent


def _resolve_paths(raw: dict, base: Path) -> dict:
    out = dict(raw)
    for key in ("train_data", "validation_data", "output_dir"):
        if key in out:
            out[key] = config_path(base, out[key])
    spec = out.get("base_model")
    if isinstance(spec, str) and spec and not Path(spec).is_absolute() and is_dir(base / spec):
        out["base_model"] = str(base / spec)
    return out


def _fetch_hub_data(where: str, raw: dict, problems: list[str]) -> set[str]:
    """Hub dataset addresses (`hf://datasets/...`) in the data fields replaced by the fetched local
    files; the fields that could not be fetched, their reasons added to `problems`."""
    from harness.data.hub import fetch, is_hub_address

    failed = set()
    for field in ("train_data", "validation_data"):
        if is_hub_address(raw.get(field)):
            try:
                raw[field] = fetch(raw[field])
            except ConfigError as e:
                problems.append(f"{where}: field '{field}': {e}")
                failed.add(field)
    return failed


def _data_problems(where: str, field: str, path, family: str | None, data_format=None) -> list[str]:
    """Every problem of one dataset file: missing, unreadable, malformed records, wrong shape for the method."""
    from harness.data.formats import read_records

    if path is None:
        return []
    path = Path(path)
    if not is_file(path):
        return [f"{where}: field '{field}': file {str(path)!r} does not exist: check the path "
                "(relative paths start from the config file's folder)"]
    try:
        records = read_records(path, data_format=data_format)
    except ConfigError as e:
        return [f"{where}: field '{field}': {e}"]
    problems: list[str] = []
    wrong: list[int] = []
    for rec in records:
        problems += [f"{path}:{rec.line}: {p}" for p in rec.problems]
        if family and rec.family and rec.family != family:
            wrong.append(rec.line)
    if not records:
        problems.append(f"{path}: no records: add one JSON object per line, {SHAPES[family or 'sft']}")
    if wrong:
        other = "dpo" if family == "sft" else "sft"
        lines = ", ".join(map(str, wrong[:5])) + (", ..." if len(wrong) > 5 else "")
        problems.append(
            f"{path}: {len(wrong)} of {len(records)} records are {other} records ({SHAPES[other]}) "
            f"but this method trains on {SHAPES[family]} (lines {lines})"
        )
    if len(problems) > MAX_PROBLEMS_PER_FILE:
        more = len(problems) - MAX_PROBLEMS_PER_FILE
        problems = problems[:MAX_PROBLEMS_PER_FILE] + [f"{path}: ... and {more} more problems"]
    return problems


def _base_model_problems(where: str, spec) -> list[str]:
    """A local base model folder is checked now; aliases and hub ids resolve when the model loads."""
    from harness.errors import ModelSpecError
    from harness.models.specs import EMBEDDED, check_local_folder

    if not isinstance(spec, str) or spec in EMBEDDED:
        return []
    path = expand(spec)
    if exists(path) or spec.startswith((".", "/", "~")):
        try:
            check_local_folder(path, spec)
        except ModelSpecError as e:
            return [f"{where}: field 'base_model': {e}"]
    return []


def _cross_problems(where: str, cfg: TrainConfig) -> list[str]:
    problems = []
    if cfg.method == "prefix_tuning" and cfg.gradient_checkpointing:
        problems.append(f"{where}: field 'gradient_checkpointing': prefix tuning does not work under gradient checkpointing "
                        "(peft refuses it): set it to false")
    if cfg.lora.layers is not None:
        if cfg.method not in ("lora", "qlora", "dpo"):
            problems.append(f"{where}: field 'lora.layers': only lora, qlora and dpo adapters can be limited to layers; "
                            f"remove it for {cfg.method}")
        elif not cfg.lora.layers or any(i < 0 for i in cfg.lora.layers):
            problems.append(f"{where}: field 'lora.layers': give a non-empty list of 0-based layer indices, e.g. [15, 16, 17]")
        elif isinstance(cfg.lora.target_modules, str) and cfg.lora.target_modules != "all-linear":
            problems.append(f"{where}: field 'lora.layers': needs target_modules 'all-linear' or a list of module names, "
                            "not a regular expression")
    if cfg.eval_steps and not cfg.validation_data:
        problems.append(f"{where}: field 'eval_steps': set, but there is no validation_data to evaluate: add "
                        "validation_data or remove eval_steps")
    if cfg.validation_data and cfg.train_data and Path(cfg.validation_data).resolve() == Path(cfg.train_data).resolve():
        problems.append(f"{where}: field 'validation_data': the same file as train_data: hold out separate records")
    return problems


def _place_hints(problems: list[str], raw: dict) -> list[str]:
    """An unknown top-level key that is a trl or peft setting: say which section takes it."""
    unknown = [k for k in raw if k not in TrainConfig.model_fields]
    if not unknown:
        return problems
    from harness.train.passthrough import placement

    out = []
    for p in problems:
        key = next((k for k in unknown if f"field '{k}': unknown key" in p), None)
        found = placement(key, raw.get("method")) if key else None
        out.append(p.split(": unknown key")[0] + f": a setting of {found[1]}: put it under '{found[0]}:' "
                   f"({found[0]}: {{{key}: ...}})" if found else p)
    return out


def load_train_config(source: str | Path | dict | TrainConfig, base_dir: str | Path | None = None) -> TrainConfig:
    """Validate a training config and its data; raise one ConfigError listing every problem."""
    raw, where, base = _read_source(source, base_dir)
    raw = _resolve_paths(raw, base)
    problems: list[str] = []
    unfetched = _fetch_hub_data(where, raw, problems)
    cfg: TrainConfig | None = None
    try:
        cfg = TrainConfig.model_validate(raw)
    except ValidationError as e:
        problems += field_problems(where, e, TrainConfig)
    method = raw.get("method")
    family = METHODS[method].family if isinstance(method, str) and method in METHODS else None
    problems += _base_model_problems(where, raw.get("base_model", DEFAULT_MODEL))
    for field in ("train_data", "validation_data"):
        value = raw.get(field)
        if isinstance(value, (str, Path)) and field not in unfetched:
            from harness.data.tables import check_data_format

            fmt = raw.get("data_format")  # an invalid one is reported as its own field
            problems += _data_problems(where, field, value, family, fmt if check_data_format(fmt) is None else None)
    problems = _place_hints(problems, raw)
    if cfg is not None:
        problems += _cross_problems(where, cfg)
        if not problems:
            from harness.train.passthrough import check

            problems += check(where, cfg)
    if problems:
        raise ConfigError(problems, title=f"invalid training config {where}")
    assert cfg is not None
    if cfg.output_dir is None:
        cfg.output_dir = base / "runs" / f"{cfg.method}-{cfg.config_hash()[:12]}"
    return cfg

"""The wrapped run's config (`run.yaml`): base model, suites, training, gate policy, channel.

Paths are relative to the folder of the YAML file. Everything is validated before any model
loads, every problem at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError

from harness.configmodel import ConfigModel, field_problems
from harness.errors import ConfigError
from harness.files import config_path, is_file, load_mapping


class ServerSettings(ConfigModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(None, description="openai: the running server's address (http://host:port)")
    model: str | None = Field(None, description="the name the server serves the base under (vllm: default 'base'; "
                              "openai: required, one of its /v1/models)")
    command: str | list[str] | None = Field(None, description="vllm: the command that runs vLLM's CLI (default: "
                                            "$HARNESS_VLLM, vllm on PATH, or the .venv-vllm `make vllm` builds)")
    args: list[str] = Field(default_factory=list, description="vllm: more arguments for `vllm serve` (on a CPU the "
                            "harness adds --gpu-memory-utilization 0.15 unless given)")
    max_lora_rank: int = Field(16, gt=0, description="vllm: --max-lora-rank (at least the adapter's r)")
    concurrency: int = Field(8, gt=0, le=256, description="requests in flight at once")
    loglik_concurrency: int = Field(1, gt=0, le=256, description="prompt log-probability requests in flight at once "
                                    "(1: vLLM 0.32's CPU build with LoRA fails when two share a batch; raise it on a GPU)")
    timeout_s: float = Field(300.0, gt=0, description="seconds to wait for one answer")
    startup_timeout_s: float = Field(600.0, gt=0, description="vllm: seconds to wait for the server to be ready")


class EvalSettings(ConfigModel):
    model_config = ConfigDict(extra="forbid")
    backend: Literal["hf", "vllm", "openai"] = Field(
        "hf", description="what runs the model: hf (transformers, in this process), vllm (a `vllm serve` the harness "
        "starts and stops), openai (an OpenAI-compatible server already running at eval.server.url)")
    server: ServerSettings = ServerSettings()
    batch_size: int | None = Field(None, gt=0, description="generation batch size (default: from the memory budget)")
    latency_sample: int | None = Field(None, ge=0, description="cases timed at batch 1 per suite, base and candidate "
                                       "in the same process (default: each suite's)")
    latency_suites: list[str] | None = Field(None, description="names of the suites timed (default: all)")
    max_cases: int | None = Field(None, gt=0, description="evaluate a fixed sample of at most N cases per suite, the same "
                                  "cases for base, candidate and arms (default: every case)")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="dtype the evals run in (auto: bfloat16 on CPUs with AMX/AVX512-BF16 and bf16 GPUs, else float32)")
    device: str = Field("auto", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$",
                        description="device the evals run on (auto: CUDA, then MPS, else the CPU)")
    invariance_sample: int | None = Field(None, ge=0, description="cases per suite generated again alone to check that "
                                          "batching did not change them (default 2; 0: no check)")
    sequential: bool = Field(False, description="evaluate the candidate in chunks and stop once the gate's verdict is "
                             "settled (group-sequential boundaries keep the error rates; see harness.gates.sequential)")
    looks: int = Field(5, ge=2, le=20, description="sequential: the number of chunks (looks at the gate)")
    plan: Literal["warn", "strict", "off"] = Field(
        "warn", description="the gate plan after the baseline: warn when a blocking rule cannot be decided with the "
        "run's cases; strict: refuse to train then (harness run --strict)")


class DataCheckSettings(ConfigModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(True, description="run the data checks before training")
    block: bool = Field(True, description="blocking findings (leakage, PII, malformed records) stop the run")
    override_reason: str | None = Field(None, description="continue despite blocking findings; recorded in the registry")
    schema_path: str | None = Field(None, alias="schema", description="JSON schema that JSON assistant outputs must follow")


class CheckpointSelection(ConfigModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(False, description="evaluate intermediate checkpoints and keep the best")
    on: Literal["validation", "suite"] = Field(
        "validation", description="validation: the lowest validation loss (train.validation_data, logged at each "
        "checkpoint); suite: a metric on a fixed selection split of a suite, which the gate then leaves out")
    suite: str = Field("ticket_triage", description="on suite: the suite (one of the run's) that gives up the split")
    metric: str = Field("pass_rate", description="on suite: the metric of that suite to maximise")
    max_cases: int = Field(40, gt=0, description="on suite: cases in the selection split (fixed by a hash of "
                           "the suite name and case id; excluded from the gate's comparison)")


class RunConfig(ConfigModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str = Field("run", description="a label for the run")
    base_model: str = Field("smollm2-135m-instruct", description="model spec of the base")
    suites: list[str] = Field(..., min_length=1, description="suite folders evaluated before and after training")
    policy: str | None = Field(None, description="gate policy YAML (default: the shipped policy)")
    channel: str | None = Field(None, description="promote to this channel when the gate passes")
    train: dict[str, Any] = Field(..., description="training config (see `harness train`); base_model is inherited")
    eval: EvalSettings = EvalSettings()
    data_checks: DataCheckSettings = DataCheckSettings()
    checkpoint_selection: CheckpointSelection = CheckpointSelection()
    arms: list[Literal["prompted", "retrieval"]] = Field(default_factory=list, description="extra arms beside the candidate")
    arm_suites: list[str] | None = Field(None, description="names of the suites the arms are evaluated on (default: all)")
    shots: int = Field(4, ge=0, le=16, description="examples placed in the prompt of the prompted/retrieval arms")
    report: bool = Field(True, description="write the HTML report at the end")


def _resolve(base: Path, p: Any) -> Any:
    """A path from the config, absolute from the config's folder, as the text the fields hold."""
    q = config_path(base, p)
    return str(q) if isinstance(q, Path) else q


def _train_problems_of_raw(p: Path, raw, base: Path) -> list[str]:
    """The training section's problems, when the run config as a whole did not validate."""
    from harness.train import load_train_config

    if not (isinstance(raw, dict) and isinstance(raw.get("train"), dict)):
        return []
    train_raw = {**raw["train"], "base_model": raw["train"].get("base_model", raw.get("base_model", "smollm2-135m-instruct"))}
    for key in ("train_data", "validation_data"):
        if train_raw.get(key):
            train_raw[key] = _resolve(base, train_raw[key])
    try:
        load_train_config(train_raw)
    except ConfigError as te:
        return [f"{p}: train: {x}" for x in te.problems]
    return []


def _suite_names(p: Path, cfg, problems: list[str]) -> set:
    """The names of the run's suites; a folder without suite.yaml is a problem."""
    names = set()
    for s in cfg.suites:
        if not is_file(Path(s) / "suite.yaml"):
            problems.append(f"{p}: field 'suites': {s} is not a suite folder (no suite.yaml)")
            continue
        try:
            names.add(load_mapping(Path(s) / "suite.yaml", "a suite spec").get("name"))
        except ConfigError as e:
            problems += [f"{p}: field 'suites': {x}" for x in e.problems]
    return names


def _selection_problems(p: Path, sel, train_cfg) -> list[str]:
    if not sel.enabled or train_cfg is None:
        return []
    if sel.on == "suite" and train_cfg.method == "full":
        return [f"{p}: field 'checkpoint_selection.on': suite is not available for train.method full "
                "(each checkpoint is a whole model to load): use on: validation"]
    if sel.on == "validation" and not train_cfg.validation_data:
        return [f"{p}: field 'checkpoint_selection.on': validation needs train.validation_data "
                "(or select on: suite, a split of a suite the gate leaves out)"]
    if sel.on == "validation" and (not train_cfg.eval_steps or train_cfg.save_steps % train_cfg.eval_steps):
        return [f"{p}: field 'checkpoint_selection.on': validation needs the validation loss at every "
                f"checkpoint: set train.eval_steps to train.save_steps ({train_cfg.save_steps}) or a divisor of it"]
    return []




def _server_problems(p: Path, ev: EvalSettings, train_cfg) -> list[str]:
    if ev.backend == "hf":
        return []
    from harness.models.openai_backend import SERVED_METHODS

    out = []
    if ev.backend == "openai":
        out += [f"{p}: field 'eval.server.{k}': required with eval.backend openai ({what})"
                for k, what in (("url", "the server's address"), ("model", "the name it serves the base under"))
                if not getattr(ev.server, k)]
        if ev.server.url and not ev.server.url.startswith(("http://", "https://")):
            out.append(f"{p}: field 'eval.server.url': {ev.server.url!r} is not an http(s) address: write http://{ev.server.url}")
    if train_cfg is not None and train_cfg.method not in SERVED_METHODS:
        out.append(f"{p}: field 'eval.backend': {ev.backend} serves LoRA adapters on the unquantised base "
                   f"(train.method {', '.join(SERVED_METHODS)}), not {train_cfg.method}: use eval.backend hf")
    return out


def load_run_config(path: str | Path) -> tuple[RunConfig, Any, Path]:
    """(run config, validated training config, config folder); every problem at once."""
    from harness.train import load_train_config

    p = Path(path)
    if not is_file(p):
        raise ConfigError(f"run config {str(p)!r} does not exist")
    raw = load_mapping(p, "a run config (base_model, suites, train, ...)")
    base = p.resolve().parent
    try:
        cfg = RunConfig.model_validate(raw)
    except ValidationError as e:
        problems = field_problems(str(p), e, RunConfig) + _train_problems_of_raw(p, raw, base)
        raise ConfigError(problems, title=f"invalid run config {p}") from None
    cfg.suites = [_resolve(base, s) for s in cfg.suites]
    cfg.policy = _resolve(base, cfg.policy)
    cfg.data_checks.schema_path = _resolve(base, cfg.data_checks.schema_path)
    problems: list[str] = []
    names = _suite_names(p, cfg, problems)
    known = ", ".join(sorted(str(x) for x in names))
    for field, listed in (("arm_suites", cfg.arm_suites), ("eval.latency_suites", cfg.eval.latency_suites)):
        for n in listed or []:
            if n not in names:
                problems.append(f"{p}: field '{field}': {n!r} is not the name of one of the run's suites ({known})")
    if cfg.policy and not is_file(cfg.policy):
        problems.append(f"{p}: field 'policy': {cfg.policy} does not exist")
    else:  # a typo in the policy must stop the run now, not at the gate after training
        problems += _policy_problems(p, cfg.policy, names)
    train_raw = dict(cfg.train)
    train_raw.setdefault("base_model", cfg.base_model)
    for key in ("train_data", "validation_data", "output_dir"):
        if train_raw.get(key):
            train_raw[key] = _resolve(base, train_raw[key])
    train_cfg = None
    try:
        train_cfg = load_train_config(train_raw)
    except ConfigError as e:
        problems += [f"{p}: train: {x}" for x in e.problems]
    problems += _selection_problems(p, cfg.checkpoint_selection, train_cfg)
    problems += _server_problems(p, cfg.eval, train_cfg)
    if problems:
        raise ConfigError(problems, title=f"invalid run config {p}")
    return cfg, train_cfg, base


def _policy_problems(p: Path, policy_path: str | None, names: set) -> list[str]:
    """The run's gate policy, loaded now: its own errors, and rules or required suites that name
    a suite the run does not evaluate (`names`)."""
    from harness.gates import load_policy

    try:
        policy = load_policy(policy_path)
    except ConfigError as e:
        return [f"{p}: field 'policy': {x}" for x in e.problems]
    where, known = policy_path or "the shipped default policy", ", ".join(sorted(str(x) for x in names))
    out = [f"{p}: field 'policy': {where} requires suite {suite!r}, which the run does not evaluate (its suites: {known})"
           for suite in policy.required if suite not in names]
    for r in policy.rules:
        suite = r.metric.split("/", 1)[0]
        if suite != "*" and suite not in names:
            out.append(f"{p}: field 'policy': {where} has a rule on {r.metric!r}, but no suite of the run is named "
                       f"{suite!r} (its suites: {known})")
    return out

"""`train(config)`: validate, train, save, smoke-test, write the manifest. Top to bottom.

The run folder (`output_dir`) holds `train_config.json` (the resolved config and its hash),
trl's `checkpoint-N/` folders (each a loadable adapter, plus optimizer state for resume) and the
final artifact: `adapter/` (PEFT, safetensors) or `model/` for `full`, with `manifest.json`
beside the weights. `resume=True` continues from the latest checkpoint of the same config.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from harness.errors import ConfigError
from harness.train.config import TrainConfig, load_train_config
from harness.train.methods import METHODS
from harness.train.adapter_config import stabilize_adapter_config

LIBRARIES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes", "safetensors")
RUN_FILE = "train_config.json"
SMOKE_TRAIN_PROMPTS = 2  # training prompts added to the smoke test's fixed ones


@dataclass
class TrainResult:
    """What a finished run produced."""

    output_dir: Path  # the adapter folder, or the model folder for `full`
    method: str
    manifest: dict
    loss_history: list[dict] = field(default_factory=list)  # {step, loss} and {step, eval_loss}
    checkpoints: list[Path] = field(default_factory=list)
    smoke: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    @property
    def artifact_hash(self) -> str | None:
        return self.manifest.get("artifact_hash")


def checkpoints_of(run_dir: Path) -> list[Path]:
    """Complete checkpoint-N folders, oldest first. The trainer writes trainer_state.json last, so a
    folder without it was cut short (Ctrl-C or a crash mid-save) and cannot be resumed from."""
    found = [p for p in Path(run_dir).glob("checkpoint-*")
             if p.is_dir() and re.fullmatch(r"checkpoint-\d+", p.name) and (p / "trainer_state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def _is_main_process() -> bool:
    """Rank 0, or the only process. Read from the launcher's environment (accelerate launch, torchrun)
    so that the guard runs before the trainer sets up the distributed state."""
    return os.environ.get("RANK", "0") == "0"


def _start_run_folder(cfg: TrainConfig, resume: bool) -> Path | None:
    """Guard the run folder; returns the checkpoint to resume from (None: start at step 0)."""
    out = Path(cfg.output_dir)
    existing = checkpoints_of(out)
    checkpoint = existing[-1] if resume and existing else None
    if not _is_main_process():  # rank 0 guards and writes; the others only read the checkpoints
        return checkpoint
    run_file = out / RUN_FILE
    chash = cfg.config_hash()
    if run_file.is_file():
        earlier = json.loads(run_file.read_text()).get("config_hash", "")
        if resume and earlier != chash:
            raise ConfigError(f"{out} holds a run of a different config (hash {earlier[:12]}, this one {chash[:12]}): "
                              "resume with the config that started it, or set a fresh output_dir")
    if not resume and (existing or run_file.is_file()):
        raise ConfigError(f"{out} already holds an earlier run: pass --resume (resume=True) to continue it, "
                          "or set a fresh output_dir")
    out.mkdir(parents=True, exist_ok=True)
    run_file.write_text(json.dumps({"config_hash": chash, "config": cfg.to_dict()}, indent=2))
    return checkpoint


def library_versions() -> dict[str, str]:
    from harness import __version__

    out = {"python": platform.python_version(), "harness": __version__}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def loss_history(log_history: list[dict]) -> list[dict]:
    """{step, loss} and {step, eval_loss} entries (DPO adds the reward margin) from trl's log."""
    out = []
    for entry in log_history:
        step = entry.get("step")
        if "loss" in entry:
            row = {"step": step, "loss": entry["loss"]}
            if "rewards/margins" in entry:
                row["reward_margin"] = entry["rewards/margins"]
            out.append(row)
        if "eval_loss" in entry:
            row = {"step": step, "eval_loss": entry["eval_loss"]}
            if "eval_rewards/margins" in entry:
                row["eval_reward_margin"] = entry["eval_rewards/margins"]
            out.append(row)
    return out


def final_metrics(log_history: list[dict]) -> dict:
    """The last value of each scalar metric trl logged (train_runtime, train_loss, eval_loss, ...)."""
    out: dict = {}
    for entry in log_history:
        for k, v in entry.items():
            if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                out[k] = v
    return out


def _save_final(trainer, cfg: TrainConfig, base_path=None) -> Path:
    final = Path(cfg.output_dir) / ("model" if cfg.method == "full" else "adapter")
    if trainer.is_world_process_zero() and final.exists():
        shutil.rmtree(final)
    trainer.save_model(str(final))
    if trainer.is_world_process_zero():
        (final / "training_args.bin").unlink(missing_ok=True)  # a pickle; the manifest holds the config
        stabilize_adapter_config(final, cfg.base_model, base_path)
        (final / "README.md").write_text(stored_card(cfg, final))
    return final


def stored_card(cfg: TrainConfig, final: Path) -> str:
    """The artifact's README: what made it, from the config alone (deterministic, so the folder is
    the same bytes on every machine; peft's template named this machine's cache path). The verdict
    comes later: `harness export CHANNEL --format hf` writes a card with the gate's rules."""
    saved = final / "adapter_config.json"
    base = json.loads(saved.read_text()).get("base_model_name_or_path", cfg.base_model) if saved.is_file() else cfg.base_model
    data = cfg.data_hashes()
    lines = ["---", f"base_model: {json.dumps(base)}", "library_name: " + ("transformers" if cfg.method == "full" else "peft"),
             f"tags: [harness, {json.dumps(cfg.method)}]", "---", "",
             f"# A {cfg.method} {'model' if cfg.method == 'full' else 'adapter'} trained by harness", "",
             f"- base model: `{cfg.base_model}`",
             f"- training config hash: `{cfg.config_hash()}`",
             f"- training data sha256: `{data['train']}`" + (f", validation `{data['validation']}`" if data["validation"] else ""),
             f"- steps: {cfg.max_steps or f'{cfg.num_epochs:g} epochs'}, learning rate {cfg.learning_rate:g}, seed {cfg.seed}",
             "", "Not evaluated yet. A `harness run` records its gate verdict in the registry (`harness show RUN`); "
             "`harness export CHANNEL --format hf` writes this card again with every rule of the gate."]
    return "\n".join(lines) + "\n"


def _manifest(cfg: TrainConfig, prepared, trainer, final: Path, checkpoint, history, metrics, smoke, train_time: float,
              wall_time: float) -> dict:
    """What the run's manifest.json records: how the artifact was made, from what, and what it is."""
    from harness.models import adapter_fingerprint, model_fingerprint

    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    return {
        "method": cfg.method,
        "family": METHODS[cfg.method].family,
        "base_spec": cfg.base_model,
        "base_path": str(prepared.base_path),
        "base_fingerprint": prepared.base_fingerprint,
        "config": cfg.to_dict(),
        "config_hash": cfg.config_hash(),
        "data_hashes": cfg.data_hashes(),
        "data_records": {"train": prepared.n_train, "validation": prepared.n_validation},
        "records_cut": len(prepared.cut),
        "library_versions": library_versions(),
        "seed": cfg.seed,
        "steps": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "trainable_parameters": sum(p.numel() for p in unwrapped.parameters() if p.requires_grad),
        "loss_history": history,
        "final_metrics": metrics,
        "resumed_from": checkpoint.name if checkpoint else None,
        "train_time_s": round(train_time, 3),
        "wall_time_s": round(wall_time, 3),
        "device": str(trainer.args.device),
        "dtype": cfg.dtype,
        "precision": "bf16" if trainer.args.bf16 else "fp16" if trainer.args.fp16 else "fp32",
        "smoke_test": smoke,
        "artifact_hash": model_fingerprint(final) if cfg.method == "full" else adapter_fingerprint(final),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def train(
    config: TrainConfig | dict | str | Path, resume: bool = False, callbacks=(), show_progress: bool = True
) -> TrainResult:
    """Train one config; raises ConfigError before any model loads, AdapterNoEffect after a useless run."""
    from harness.train.callbacks import ProgressLog
    from harness.train.dataset import prompts_of
    from harness.train.smoke import smoke_test
    from harness.train.trainers import frozen_weights_in_autocast_dtype, prepare

    t0 = time.perf_counter()
    cfg = load_train_config(config)
    method = METHODS[cfg.method]
    checkpoint = _start_run_folder(cfg, resume)

    # setup
    progress = ProgressLog() if show_progress else None
    prepared = prepare(cfg, callbacks=[*callbacks, *([progress] if progress else [])])
    trainer = prepared.trainer
    if prepared.cut:
        from harness.console import console

        console().print(f"[yellow]warning[/yellow]: {len(prepared.cut)} of {prepared.n_train} training records are longer "
                        f"than max_length {cfg.max_length} tokens (up to {max(prepared.cut)}): they are cut at the end, so "
                        f"their answers are incomplete; raise max_length to {max(prepared.cut)} or shorten them")

    # train
    t_train = time.perf_counter()
    try:
        with frozen_weights_in_autocast_dtype(trainer):
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    finally:
        if progress:
            progress.close()
    train_time = time.perf_counter() - t_train

    # save, check, record
    final = _save_final(trainer, cfg, prepared.base_path)
    history = loss_history(trainer.state.log_history)
    metrics = final_metrics(trainer.state.log_history)
    result = TrainResult(final, cfg.method, {}, history, checkpoints_of(cfg.output_dir), {}, metrics)
    if not trainer.is_world_process_zero():
        return result
    result.smoke = smoke_test(cfg.base_model, final, prompts=prompts_of(cfg.train_data, method.family, SMOKE_TRAIN_PROMPTS, cfg.data_format))
    result.manifest = _manifest(cfg, prepared, trainer, final, checkpoint, history, metrics, result.smoke,
                                train_time, time.perf_counter() - t0)
    tmp = final / "manifest.json.tmp"  # written last and atomically: its presence marks a finished run
    tmp.write_text(json.dumps(result.manifest, indent=2, default=str))
    os.replace(tmp, final / "manifest.json")
    return result

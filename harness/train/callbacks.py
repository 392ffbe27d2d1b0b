"""Trainer callbacks: the progress bar and loss log shown while training."""

from __future__ import annotations

from pathlib import Path

from transformers import TrainerCallback

# metric -> label, in the order a log line shows them
SHOWN = {
    "loss": "loss",
    "eval_loss": "eval_loss",
    "rewards/margins": "reward_margin",
    "eval_rewards/margins": "eval_reward_margin",
    "learning_rate": "lr",
}


class ProgressLog(TrainerCallback):
    """A rich progress bar over optimizer steps (on a terminal) and one stderr line per logged loss."""

    def __init__(self, console=None):
        from harness.console import console as default_console

        self.console = console or default_console()
        self.bar = None
        self.task = None

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero or not self.console.is_terminal:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TimeRemainingColumn(), console=self.console, transient=True)
        self.bar.start()
        self.task = self.bar.add_task("training", total=state.max_steps, completed=state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(self.task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        parts = []
        for key, label in SHOWN.items():
            if key in logs and isinstance(logs[key], (int, float)):
                value = logs[key]
                parts.append(f"{label} {value:.2e}" if key == "learning_rate" else f"{label} {value:.4f}")
        if parts and any(k in logs for k in ("loss", "eval_loss")):
            width = len(str(state.max_steps))
            self.console.print(f"step {state.global_step:>{width}}/{state.max_steps}  " + "  ".join(parts),
                               highlight=False)

    def on_train_end(self, args, state, control, **kwargs):
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


class StableCheckpoints(TrainerCallback):
    """Rewrites each checkpoint's adapter_config.json byte-stable (see `stabilize_adapter_config`)."""

    def __init__(self, base_spec: str, base_path=None):
        self.base_spec, self.base_path = base_spec, base_path

    def on_save(self, args, state, control, **kwargs):
        from harness.train.adapter_config import stabilize_adapter_config

        if state.is_world_process_zero:
            stabilize_adapter_config(Path(args.output_dir) / f"checkpoint-{state.global_step}", self.base_spec,
                                     self.base_path)

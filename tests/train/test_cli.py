"""`harness train CONFIG.yaml` end to end, launched the multi-GPU way: `accelerate launch` (one CPU process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.train.conftest import FIXTURES

REPO = Path(__file__).resolve().parents[2]


def test_harness_train_runs_under_accelerate_launch(tiny_model_dir, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "base_model": str(tiny_model_dir), "method": "lora", "output_dir": "run",
        "train_data": str(FIXTURES / "tiny_chat.jsonl"), "validation_data": str(FIXTURES / "tiny_validation.jsonl"),
        "max_steps": 2, "batch_size": 2, "learning_rate": 1e-2, "logging_steps": 1, "max_length": 64,
    }))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "harness.cli", "train", str(config)],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    adapter = Path(proc.stdout.strip().splitlines()[-1])
    assert adapter == tmp_path / "run" / "adapter" and (adapter / "adapter_model.safetensors").is_file()
    # the loss log and the summary went to stderr
    assert "step 1/2  loss" in proc.stderr and "step 0/2  eval_loss" in proc.stderr
    assert "smoke test passed" in proc.stderr and "Traceback" not in proc.stderr
    manifest = json.loads((adapter / "manifest.json").read_text())
    assert manifest["steps"] == 2 and [h["step"] for h in manifest["loss_history"] if "eval_loss" in h] == [0, 2]

"""Training overhead: `harness.train.train()` vs a plain trl `SFTTrainer` script, same settings.

Both do the same LoRA SFT run (same base, data, steps, batch, learning rate, LoRA shape, seed,
checkpointing): the plain script loads the model, converts the JSONL chat records to
prompt/completion, trains and saves the adapter; the harness additionally validates the config
and data, writes the run folder guard, smoke-tests the adapter through the eval backend and writes
the manifest. Each measurement runs in a fresh process (imports excluded from the timing, caches
warm), the two alternating; the median of the repeats is compared.

    python bench/train_overhead.py                          # tiny random model, 60 steps
    python bench/train_overhead.py --model smollm2-135m-instruct --steps 20
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "fixtures" / "train" / "capitals_train.jsonl"


def settings(args, model: str, out: str) -> dict:
    return {
        "base_model": model, "method": "lora", "train_data": str(args.data), "output_dir": out, "seed": 0,
        "max_steps": args.steps, "batch_size": args.batch_size, "learning_rate": 2e-4, "max_length": args.max_length,
        "logging_steps": 10, "save_steps": 100, "lora": {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": "all-linear"},
    }


def run_harness(cfg: dict) -> dict:
    from harness.train import train

    t0 = time.perf_counter()
    result = train(cfg, show_progress=False)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "train_s": result.manifest["train_time_s"], "loss": result.loss_history[-1]["loss"]}


def run_trl(cfg: dict) -> dict:
    """What a user writes with trl alone, mirroring `cfg` field by field."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, set_seed
    from trl import SFTConfig, SFTTrainer

    from harness.models import resolve

    path = resolve(cfg["base_model"]).path  # the same local safetensors folder
    t0 = time.perf_counter()
    set_seed(cfg["seed"])
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(path)
    rows = [json.loads(line) for line in open(cfg["train_data"], encoding="utf-8") if line.strip()]
    dataset = Dataset.from_list([{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in rows])
    lora = cfg["lora"]
    args = SFTConfig(
        output_dir=cfg["output_dir"], seed=cfg["seed"], data_seed=cfg["seed"], max_steps=cfg["max_steps"],
        learning_rate=cfg["learning_rate"], per_device_train_batch_size=cfg["batch_size"],
        max_length=cfg["max_length"], logging_steps=cfg["logging_steps"], logging_first_step=True,
        save_strategy="steps", save_steps=cfg["save_steps"], use_cpu=not torch.cuda.is_available(),
        bf16=False, gradient_checkpointing=False, report_to=[], disable_tqdm=True, packing=False,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                                                target_modules=lora["target_modules"], task_type="CAUSAL_LM"))
    trainer.remove_callback(PrinterCallback)
    t_train = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t_train
    trainer.save_model(str(Path(cfg["output_dir"]) / "adapter"))
    wall = time.perf_counter() - t0
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"wall_s": wall, "train_s": train_s, "loss": losses[-1]}


def worker(kind: str, cfg_json: str) -> None:
    """One timed run in this fresh process; libraries are imported before the clock starts."""
    import datasets
    import peft  # noqa: F401
    import trl  # noqa: F401
    from transformers.utils import logging as hf_logging

    import harness.train  # noqa: F401

    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    cfg = json.loads(cfg_json)
    out = run_harness(cfg) if kind == "harness" else run_trl(cfg)
    print("RESULT " + json.dumps(out))


def measure(kind: str, cfg: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", kind, json.dumps(cfg)], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"{kind} run failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model spec (default: a 2-layer random Llama with SmolLM2's tokenizer)")
    ap.add_argument("--steps", type=int, default=60, help="optimizer steps per run")
    ap.add_argument("--batch-size", type=int, default=8, help="records per step")
    ap.add_argument("--max-length", type=int, default=96, help="tokens per record")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each, alternating; the median is compared")
    ap.add_argument("--data", type=Path, default=DATA, help="JSONL chat records")
    ap.add_argument("--worker", nargs=2, metavar=("KIND", "CONFIG"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return

    with tempfile.TemporaryDirectory(prefix="train-overhead-") as tmp:
        model = args.model
        if model is None:
            sys.path.insert(0, str(REPO))
            from tests.conftest import build_tiny_model

            model = str(build_tiny_model(Path(tmp) / "tiny"))
        runs: dict[str, list[dict]] = {"harness": [], "trl": []}
        for i in range(args.repeats):
            for kind in ("trl", "harness") if i % 2 else ("harness", "trl"):
                runs[kind].append(measure(kind, settings(args, model, f"{tmp}/{kind}-{i}")))
                print(f"  {kind:<8} run {i + 1}: {runs[kind][-1]['wall_s']:.2f} s", file=sys.stderr)

    med = {k: statistics.median(r["wall_s"] for r in v) for k, v in runs.items()}
    med_train = {k: statistics.median(r["train_s"] for r in v) for k, v in runs.items()}
    overhead = (med["harness"] / med["trl"] - 1) * 100
    print(f"\nLoRA SFT, {args.steps} steps x {args.batch_size} records (max_length {args.max_length}), "
          f"model {args.model or 'tiny random Llama'}, median of {args.repeats}")
    print(f"{'':<26}{'plain trl':>12}{'harness':>12}")
    print(f"{'wall time (s)':<26}{med['trl']:>12.2f}{med['harness']:>12.2f}")
    print(f"{'  of which trainer.train':<26}{med_train['trl']:>12.2f}{med_train['harness']:>12.2f}")
    rest = {k: statistics.median(r["wall_s"] - r["train_s"] for r in v) for k, v in runs.items()}
    print(f"{'  load, save, checks':<26}{rest['trl']:>12.2f}{rest['harness']:>12.2f}")
    print(f"{'final loss':<26}{runs['trl'][-1]['loss']:>12.4f}{runs['harness'][-1]['loss']:>12.4f}")
    print(f"overhead: {overhead:+.1f} % (target <= 5 %): config + data validation, run guard, "
          "smoke test, manifest")


if __name__ == "__main__":
    main()

"""Training in bf16 autocast against fp32, on the demo's LoRA config, side by side.

1. Step time: the same batches through the same prepared trainer, fp32 and bf16 autocast
   alternating, median of the repeats (the weights and the optimizer stay fp32 either way).
2. Loss curves: two real `train()` runs of the demo config (same seed, same batches), one with
   `precision: fp32` and one with `precision: bf16`, the training loss of every step side by
   side, the validation loss at the end, and each run's training time from its manifest.

    python bench/train_precision.py               # 4-step timings x 3, two 16-step runs (~8 min)
    python bench/train_precision.py --steps 48    # the demo's full 48 steps
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "ticket_triage" / "run.yaml"


def demo_train_config(out: Path, **over) -> dict:
    raw = yaml.safe_load(DEMO.read_text())
    cfg = dict(raw["train"])
    for key in ("train_data", "validation_data"):
        cfg[key] = str((DEMO.parent / cfg[key]).resolve())
    cfg.update(base_model=raw.get("base_model", "smollm2-135m-instruct"), output_dir=str(out), **over)
    return cfg


def step_times(tmp: Path, steps: int, repeats: int) -> None:
    import torch

    from harness.train.config import load_train_config
    from harness.train.trainers import prepare

    cfg = load_train_config(demo_train_config(tmp / "steps", max_steps=steps, precision="fp32", save_steps=10**6))
    trainer = prepare(cfg).trainer
    batches = [b for _, b in zip(range(steps), trainer.get_train_dataloader())]
    model = trainer.model
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)

    def run(bf16: bool) -> float:
        t0 = time.perf_counter()
        for b in batches:
            ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
            with ctx:
                loss = trainer.compute_loss(model, dict(b))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for i in range(repeats):
        for way in (("bf16", "fp32") if i % 2 else ("fp32", "bf16")):
            times[way].append(run(way == "bf16"))
            print(f"  {way} run {i + 1}: {times[way][-1]:.2f} s", file=sys.stderr)
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    med = {k: statistics.median(v) / steps for k, v in times.items()}
    print(f"step time, {steps} steps x {cfg.batch_size} records ({tokens} tokens), median of {repeats}:")
    print(f"  fp32 {med['fp32']:.2f} s/step, bf16 autocast {med['bf16']:.2f} s/step -> {med['fp32'] / med['bf16']:.2f}x")


def loss_curves(tmp: Path, steps: int) -> None:
    from harness.train import load_train_config, train

    runs = {}
    for precision in ("fp32", "bf16"):
        cfg = load_train_config(demo_train_config(tmp / precision, max_steps=steps, precision=precision, logging_steps=1,
                                                  save_steps=steps, eval_steps=steps))
        t0 = time.perf_counter()
        runs[precision] = train(cfg, show_progress=False)
        print(f"  {precision}: trained in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    loss = {p: [h["loss"] for h in r.loss_history if "loss" in h] for p, r in runs.items()}
    val = {p: [h["eval_loss"] for h in r.loss_history if "eval_loss" in h] for p, r in runs.items()}
    print(f"\nloss curves, {steps} steps of the demo config, same seed:")
    print(f"{'step':>6}{'fp32':>9}{'bf16':>9}{'diff':>9}")
    for i, (a, b) in enumerate(zip(loss["fp32"], loss["bf16"]), 1):
        print(f"{i:>6}{a:>9.4f}{b:>9.4f}{b - a:>+9.4f}")
    diffs = [abs(b - a) for a, b in zip(loss["fp32"], loss["bf16"])]
    last = max(1, len(diffs) // 4)
    print(f"mean |diff| {statistics.mean(diffs):.4f}; over the last quarter {statistics.mean(diffs[-last:]):.4f} "
          f"(fp32 loss there {statistics.mean(loss['fp32'][-last:]):.3f})")
    print(f"validation loss at the end: fp32 {val['fp32'][-1]:.4f}, bf16 {val['bf16'][-1]:.4f}")
    tt = {p: r.manifest["train_time_s"] for p, r in runs.items()}
    print(f"training time (manifests): fp32 {tt['fp32']:.0f} s, bf16 {tt['bf16']:.0f} s -> {tt['fp32'] / tt['bf16']:.2f}x; "
          f"manifest precision: {runs['fp32'].manifest['precision']}, {runs['bf16'].manifest['precision']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=16, help="steps of each loss-curve run")
    ap.add_argument("--timing-steps", type=int, default=4, help="steps per step-time measurement")
    ap.add_argument("--repeats", type=int, default=3, help="step-time measurements of each way, alternating")
    args = ap.parse_args()

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    with tempfile.TemporaryDirectory(prefix="train-precision-") as tmp:
        step_times(Path(tmp), args.timing_steps, args.repeats)
        loss_curves(Path(tmp), args.steps)


if __name__ == "__main__":
    main()

"""Training step time: the LM head scoring only the answer's positions vs every position.

trl 1.x scores every position of a batch through its fused LM head on devices without Triton
(a CPU) and masks the prompt afterwards; the harness makes it score only the labelled positions
(`harness.train.trainers.answer_tokens_only`). This runs the same LoRA steps both ways on
the demo's training data, alternating, in one process, and compares the medians. Loss and
gradients are the same both ways (tests/train/test_trainers.py).

    python bench/train_step.py                                   # the real model, 4 steps x 3
    python bench/train_step.py --model tiny --steps 10           # 2-layer random model
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "examples" / "ticket_triage" / "train.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct", help="model spec, or 'tiny' for a random 2-layer model")
    ap.add_argument("--steps", type=int, default=4, help="optimizer steps per measurement")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3, help="measurements of each way, alternating")
    args = ap.parse_args()

    import torch
    from transformers.utils import logging as hf_logging

    from harness.train.config import load_train_config
    from harness.train.trainers import prepare

    hf_logging.set_verbosity_error()
    with tempfile.TemporaryDirectory(prefix="train-step-") as tmp:
        model = args.model
        if model == "tiny":
            sys.path.insert(0, str(REPO))
            from tests.conftest import build_tiny_model

            model = str(build_tiny_model(Path(tmp) / "tiny"))
        cfg = load_train_config({
            "base_model": model, "method": "lora", "train_data": str(DATA), "output_dir": f"{tmp}/out", "seed": 0,
            "max_steps": args.steps, "batch_size": args.batch_size, "learning_rate": 1e-3, "max_length": 448,
            "save_steps": 10**6, "logging_steps": 10**6, "group_by_length": True,
            "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"},
        })
        prepared = prepare(cfg)
        trainer = prepared.trainer
        from trl import SFTTrainer
        batches = []
        for i, batch in enumerate(trainer.get_train_dataloader()):
            if i == args.steps:
                break
            batches.append(batch)
        model_ = trainer.model
        model_.train()
        optimizer = torch.optim.AdamW([p for p in model_.parameters() if p.requires_grad], lr=1e-3)

        def steps(answer_only: bool) -> float:
            # the harness's trainer scores answer tokens only; trl's own compute_loss every position
            compute = trainer.compute_loss if answer_only else (lambda *a: SFTTrainer.compute_loss(trainer, *a))
            t0 = time.perf_counter()
            for batch in batches:
                loss = compute(model_, dict(batch))
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
            return time.perf_counter() - t0

        times: dict[str, list[float]] = {"every position": [], "answer only": []}
        for i in range(args.repeats):
            for way in (("answer only", "every position") if i % 2 else ("every position", "answer only")):
                times[way].append(steps(way == "answer only"))
                print(f"  {way:<15} run {i + 1}: {times[way][-1]:.2f} s", file=sys.stderr)

    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    labelled = sum(int((b["labels"] != -100).sum()) for b in batches)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nLoRA SFT, {args.steps} steps x {args.batch_size} records of {DATA.name} ({tokens} tokens, "
          f"{labelled} of them answer), model {args.model}, median of {args.repeats}")
    print(f"{'':<22}{'every position':>16}{'answer only':>14}")
    print(f"{'seconds per step':<22}{med['every position'] / args.steps:>16.2f}{med['answer only'] / args.steps:>14.2f}")
    print(f"speed-up: {med['every position'] / med['answer only']:.2f}x")


if __name__ == "__main__":
    main()

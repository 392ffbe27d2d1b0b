"""Training step time: the LM head scoring only the answer's positions vs every position, and a
batch's shared prefix (the system prompt) run once.

trl 1.x scores every position of a batch through its fused LM head on devices without Triton
(a CPU) and masks the prompt afterwards; the harness makes it score only the labelled positions
(`harness.train.trainers.answer_tokens_only`). This runs the same LoRA steps both ways on
the demo's training data, alternating, in one process, and compares the medians; then the same with
the rows' common prefix run for one row (`shared_prefix_once`, the harness's trainer does both);
then that with the frozen base weights stored in bf16 for the run instead of cast by autocast at
every call (`frozen_weights_in_autocast_dtype`, around the harness's `trainer.train()`); then that
with eager attention instead of the model's sdpa (`train.attention: eager`, what the demo sets); then
that with the harness's LM-head log-probabilities instead of trl's (`harness.train.lm_head`, bitwise
the same); last, the LM head alone, trl's function against the harness's. Loss and gradients are
the same every way (tests/train/test_trainers.py, tests/train/test_lm_head.py), eager attention's
up to rounding; the table's last row prints each way's mean loss, which shows it.

    python bench/train_step.py                                   # the real model, 4 steps x 3
    python bench/train_step.py --model tiny --steps 10           # 2-layer random model
"""

from __future__ import annotations

import argparse
import contextlib
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
            # the demo's adapter (examples/ticket_triage/run.yaml); the tiny model has 2 layers, all trained
            "lora": {"r": 32, "alpha": 64, "dropout": 0.0, "target_modules": "all-linear",
                     **({} if args.model == "tiny" else {"layers": list(range(15, 30))})},
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

        from harness.train.trainers import (answer_tokens_only, frozen_weights_in_autocast_dtype, shared_prefix_length,
                                            shared_prefix_once)

        def trl_loss(*a):
            return SFTTrainer.compute_loss(trainer, *a)

        def answer_only_loss(*a):
            with answer_tokens_only():
                return SFTTrainer.compute_loss(trainer, *a)

        def prefix_once_loss(model, *a):  # the harness's loss with trl's LM head
            with answer_tokens_only(), shared_prefix_once(model):
                return SFTTrainer.compute_loss(trainer, model, *a)

        own_attention = model_.config._attn_implementation

        @contextlib.contextmanager
        def eager_attention():
            model_.set_attn_implementation("eager")  # transformers' own switch, on every submodel
            try:
                yield
            finally:
                model_.set_attn_implementation(own_attention)

        def frozen_stored():
            return frozen_weights_in_autocast_dtype(trainer)

        ways = {  # (loss, settings around the steps): trl's own loss; the LM head on answer positions
            # only; that plus the prefix once; that with the frozen weights stored in bf16; that with
            # eager attention (the demo's); that with the harness's LM head (the harness's loss)
            "every position": (trl_loss, []), "answer only": (answer_only_loss, []),
            "+ prefix once": (prefix_once_loss, []), "+ bf16 frozen": (prefix_once_loss, [frozen_stored]),
            "+ eager attn": (prefix_once_loss, [frozen_stored, eager_attention]),
            "+ LM head": (trainer.compute_loss, [frozen_stored, eager_attention]),
        }
        bf16 = bool(trainer.args.bf16)  # as the trainer runs it: bf16 autocast where the CPU has it
        losses: dict[str, list[float]] = {k: [] for k in ways}

        def steps(way: str) -> float:
            # each way's steps start from the same adapter and a fresh optimizer, so their losses compare
            start = {k: v.clone() for k, v in model_.state_dict().items() if "lora_" in k}
            optimizer = torch.optim.AdamW([p for p in model_.parameters() if p.requires_grad], lr=1e-3)
            loss_fn, settings = ways[way]
            with contextlib.ExitStack() as stack:
                for setting in settings:
                    stack.enter_context(setting())
                t0 = time.perf_counter()
                for batch in batches:
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                        loss = loss_fn(model_, dict(batch))
                    loss.backward()
                    optimizer.step()
                    optimizer.zero_grad()
                    losses[way].append(loss.item())
                took = time.perf_counter() - t0
            model_.load_state_dict(start, strict=False)
            return took

        names = list(ways)
        times: dict[str, list[float]] = {k: [] for k in names}
        for i in range(args.repeats):
            for way in names[i % len(names):] + names[:i % len(names)]:  # rotated: no way always first
                times[way].append(steps(way))
                print(f"  {way:<15} run {i + 1}: {times[way][-1]:.2f} s", file=sys.stderr)
        labelled = sum(int((b["labels"] != -100).sum()) for b in batches)
        with frozen_stored():  # the head as the trainer runs it: a frozen bf16 copy
            head = head_alone(model_.get_output_embeddings().weight, max(1, labelled // len(batches)))

    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    shared = [shared_prefix_length(b["input_ids"], b["attention_mask"]) for b in batches]
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nLoRA SFT ({'bf16 autocast' if bf16 else 'fp32'}), {args.steps} steps x {args.batch_size} records of "
          f"{DATA.name} ({tokens} tokens, {labelled} of them answer; {sum(n >= 16 for n in shared)} batches share a "
          f"prefix, {sum(n for n in shared if n >= 16)} tokens), model {args.model}, median of {args.repeats}")
    print(f"{'':<22}" + "".join(f"{k:>16}" for k in names))
    print(f"{'seconds per step':<22}" + "".join(f"{med[k] / args.steps:>16.2f}" for k in names))
    print(f"{'vs every position':<22}" + "".join(f"{med['every position'] / med[k]:>15.2f}x" for k in names))
    print(f"{'mean loss':<22}" + "".join(f"{statistics.mean(losses[k]):>16.4f}" for k in names))
    print(f"prefix once vs answer only: {med['answer only'] / med['+ prefix once']:.2f}x")
    print(f"bf16 frozen weights vs cast at every call: {med['+ prefix once'] / med['+ bf16 frozen']:.2f}x"
          + ("" if bf16 else " (fp32 training: nothing is cast, the two are the same)"))
    print(f"eager attention vs sdpa: {med['+ bf16 frozen'] / med['+ eager attn']:.2f}x")
    print(f"harness LM head vs trl's: {med['+ eager attn'] / med['+ LM head']:.2f}x")
    print(head)


def head_alone(weight, tokens: int, repeats: int = 10) -> str:
    """The LM head's log-probabilities alone, forward and backward, trl's function against the
    harness's, alternating, on `tokens` answer positions (a batch's mean) with random hidden states."""
    import torch
    from trl.kernels.chunked_logprob import ChunkedLogProbFunction

    from harness.train.lm_head import HeadWeights, LogProbsOnCPU

    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(tokens, weight.shape[1], generator=g)
    targets = torch.randint(0, weight.shape[0], (tokens,), generator=g)
    kept = HeadWeights()  # as the trainer keeps it: made once, then reused
    outputs = ("log_probs", "entropy", "is_top1")  # what trl's SFT loss asks for

    def run(fn, *extra):
        h = hidden.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=weight.dtype == torch.bfloat16):
            lp = fn.apply(h, weight, None, targets, 1.0, 32768, None, 1.0, outputs, *extra)[0]
        (-lp.sum() / tokens).backward()
        return h.grad

    ways = {"trl": lambda: run(ChunkedLogProbFunction), "harness": lambda: run(LogProbsOnCPU, kept.fp32(weight))}
    same = torch.equal(ways["trl"](), ways["harness"]())  # also warms both up
    times: dict[str, list[float]] = {k: [] for k in ways}
    for _ in range(repeats):
        for k, fn in ways.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    trl, ours = (statistics.median(times[k]) * 1000 for k in ways)
    return (f"LM head alone, forward + backward, {tokens} answer tokens x {weight.shape[0]} vocabulary ({weight.dtype}), "
            f"median of {repeats}: trl {trl:.0f} ms, harness {ours:.0f} ms ({trl / ours:.2f}x); "
            f"hidden-state gradients bitwise equal: {same}")


if __name__ == "__main__":
    main()

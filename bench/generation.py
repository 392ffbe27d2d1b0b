"""Generation throughput on the real model: naive per-request loop vs the backend's batched path.

Prints useful (non-pad) tokens/s for each, their ratio, and the machine's measured fp32 GEMM
GFLOP/s with the tokens/s ceiling it implies (2 x parameters FLOPs per token), so the fraction
of the ceiling reached is visible. Both paths run in this one process, side by side.

    python bench/generation.py [--n 64] [--max-new-tokens 32] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import time

import torch


def gemm_gflops(n: int = 2048, reps: int = 5, dtype=torch.float32) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm-up
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def prompts(n: int) -> list[list[dict]]:
    topics = ["rain", "the sea", "a city at night", "coffee", "mountains", "a library", "trains", "autumn"]
    asks = [
        "Write two sentences about {t}.",
        "Give three facts about {t}.",
        "Describe {t} to a child.",
        "What is a good title for a story about {t}?",
        "Summarise why people like {t} in one line.",
        "Write a short product description inspired by {t}.",
        "List two questions a student might ask about {t}.",
        "Compose a haiku about {t}.",
    ]
    out = []
    for i in range(n):
        out.append([{"role": "user", "content": asks[i % len(asks)].format(t=topics[(i // len(asks)) % len(topics)])}])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--n", type=int, default=64, help="number of chat prompts")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()

    from harness.models import GenerationConfig, HFBackend

    backend = HFBackend.from_spec(args.model)
    model, tok = backend.model, backend.tokenizer
    reqs = prompts(args.n)
    params = sum(p.numel() for p in model.parameters())

    # naive: what a plain script does: one generate() call per request
    t0 = time.perf_counter()
    naive_tokens = 0
    naive_texts = []
    with torch.inference_mode():
        for r in reqs:
            ids = tok(backend.render(r), return_tensors="pt", add_special_tokens=False)
            out = model.generate(**ids, max_new_tokens=args.max_new_tokens, do_sample=False, pad_token_id=backend.pad_id)
            new = out[0, ids["input_ids"].shape[1]:].tolist()
            new = new[: new.index(tok.eos_token_id)] if tok.eos_token_id in new else new
            naive_tokens += len(new)
            naive_texts.append(tok.decode(new, skip_special_tokens=True))
    naive_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    comps = backend.generate(reqs, GenerationConfig(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size))
    batched_s = time.perf_counter() - t0
    batched_tokens = sum(c.completion_tokens for c in comps)
    same = sum(a == c.text for a, c in zip(naive_texts, comps))

    gflops = gemm_gflops()
    ceiling = gflops * 1e9 / (2 * params)
    naive_tps, batched_tps = naive_tokens / naive_s, batched_tokens / batched_s
    print(f"model {args.model}: {params / 1e6:.1f} M parameters, fp32, {torch.get_num_threads()} threads")
    print(f"{args.n} chat prompts x <= {args.max_new_tokens} greedy tokens\n")
    print(f"{'path':<28}{'seconds':>10}{'tokens':>10}{'tokens/s':>12}{'% ceiling':>12}")
    print(f"{'naive loop (batch 1)':<28}{naive_s:>10.1f}{naive_tokens:>10}{naive_tps:>12.1f}{100 * naive_tps / ceiling:>11.1f}%")
    label = f"harness batched (bs {args.batch_size})"
    print(f"{label:<28}{batched_s:>10.1f}{batched_tokens:>10}{batched_tps:>12.1f}{100 * batched_tps / ceiling:>11.1f}%")
    print(f"\nratio batched / naive: {batched_tps / naive_tps:.1f}x  (target >= 7x)")
    print(f"outputs identical to the naive loop: {same}/{len(reqs)}")
    print(f"fp32 GEMM 2048^3: {gflops:.0f} GFLOP/s -> ceiling {ceiling:.0f} tokens/s at 2 x {params / 1e6:.0f} M FLOPs/token")


if __name__ == "__main__":
    main()

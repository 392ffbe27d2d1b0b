"""Evaluation speed on the real model: today's fp32 path against the new default, side by side.

The measurements, each with both sides in one process:

1. The machine: 2048^3 matrix products in fp32 and bf16 (GFLOP/s).
2. The shipped suites (all 555 cases, base model, nothing cached, no latency pass): the fp32
   path of before (transformers' generate(), batches of up to 32 planned by cost) against the
   default (`auto`: bf16 where the CPU has AMX/AVX512-BF16, through the batch-invariant
   engine). Eval seconds per suite and the ratio. Target: the default under 90 s in all.
3. Decode steps at batch 32, 64 and 128 on short chat prompts: milliseconds per step (from
   generate() timed at 1 and at 33 new tokens, so every overhead counts), against the bf16 step
   limit 2 x parameters x batch / the measured bf16 GEMM rate. Target: >= 40 % of the limit.
4. Multiple choice (the general suite's 64 four-way questions, 256 log-likelihoods): requests/s
   of the default against lm-evaluation-harness's HFLM on the same questions, at its best of
   fp32/bf16 x batch 16/64. With lm_eval importable that is lm-eval itself (e.g.
   `pip install --no-deps --target /tmp/lmeval lm_eval==0.4.13` and PYTHONPATH=/tmp/lmeval);
   otherwise a re-implementation of its batching, said so in the output. Target: >= 2x.
5. Decode steps with a LoRA adapter of the demo's shape (r 32, every linear of the top 15
   layers, random weights), at batch 1 and 64: peft's own forward per module against the
   engine's, which stacks A under the base weight (`kernels.FusedLora`), and the base beside.
6. Attention on one thread (engine version 3's fix, which kept rows off a second thread) against
   attention on every thread (version 4, the default), both over v4's padded queries and keys:
   decode steps at batch 64, 128 and 214 and the triage suite, alternating the two ways.
7. (`--only rows`) Decode products in blocks of 64 rows (the CPU default) against 32: decode
   steps at batch 8-128 and the three shipped suites, alternating, with the seconds each suite
   spends in decode attention.

    python bench/generation.py                 # everything (~10 min on 2 cores)
    python bench/generation.py --skip-suites   # decode and multiple choice only
    python bench/generation.py --only threads  # attention on one thread vs every thread (~5 min)
    python bench/generation.py --only rows     # decode blocks of 64 vs 32 rows (~10 min)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SUITES = [REPO / "suites" / n for n in ("ticket_triage", "safety", "general")]


def gemm_gflops(dtype, n: int = 2048, reps: int = 8) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def step_ms(be, batch: int) -> float:
    """Milliseconds per decode step at `batch` rows: generate() at 33 new tokens minus at 1."""
    from harness.models import GenerationConfig

    reqs = prompts(batch)
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        be.generate(reqs, GenerationConfig(max_new_tokens=1, batch_size=batch))
        t1 = time.perf_counter()
        out = be.generate(reqs, GenerationConfig(max_new_tokens=33, batch_size=batch))
        t2 = time.perf_counter()
        steps = max(c.completion_tokens for c in out) - 1
        times.append(((t2 - t1) - (t1 - t0)) / max(steps, 1) * 1000)
    return min(times)


def lora_decode_steps(new) -> None:
    import tempfile

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    import harness.models.engine as engine_module
    from harness.models import resolve

    print("\n== decode steps with a LoRA adapter (r 32, all linear layers of the top 15, random weights)")
    with tempfile.TemporaryDirectory(prefix="bench-lora-") as tmp:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(resolve("smollm2-135m-instruct").path, dtype=torch.float32)
        layers = model.config.num_hidden_layers
        cfg = LoraConfig(r=32, lora_alpha=64, lora_dropout=0.0, layers_to_transform=list(range(layers // 2, layers)),
                         target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
        peft_model = get_peft_model(model, cfg)
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.data.normal_(0, 1e-3)  # small: the outputs stay the base's, no row ends early either way
        peft_model.save_pretrained(tmp)
        del model, peft_model
        new.load_adapter(tmp)
    saved, real = new._stop_ids, engine_module.lora_adapter
    new._stop_ids = lambda: {-1}
    rows = {}
    try:
        for batch in (1, 64):
            for way in ("peft forward", "stacked (default)", "peft forward", "stacked (default)"):
                engine_module.lora_adapter = real if way.startswith("stacked") else (lambda m: None)
                new._engine = None  # built (and its weights packed) again for each way
                step_ms(new, 1)  # warm: packing is not a decode step
                rows.setdefault((way, batch), []).append(step_ms(new, batch))
        new.set_adapter(None)
        new._engine = None
        for batch in (1, 64):
            rows[("base, no adapter", batch)] = [step_ms(new, batch)]
    finally:
        new._stop_ids, engine_module.lora_adapter = saved, real
    print(f"{'path':<22}{'ms/step b1':>12}{'ms/step b64':>13}")
    for way in ("peft forward", "stacked (default)", "base, no adapter"):
        print(f"{way:<22}" + "".join(f"{min(rows[(way, b)]):>12.1f} " for b in (1, 64)))
    for b in (1, 64):
        print(f"  batch {b}: stacked {min(rows[('peft forward', b)]) / min(rows[('stacked (default)', b)]):.2f}x "
              f"faster than peft's forward; the adapter costs {min(rows[('stacked (default)', b)]) - min(rows[('base, no adapter', b)]):.1f} ms "
              f"per step over the base (peft's: {min(rows[('peft forward', b)]) - min(rows[('base, no adapter', b)]):.1f})")


def medians_table(rows: dict, ways: list[str], ratio: str, inverse: bool = False) -> None:
    """`rows[(way, measure)]`: the runs of each measure per way (two ways); their medians side by
    side and the ratio first / second (`inverse`: second / first)."""
    import statistics

    width = max(len(m) for _, m in rows) + 2
    print(f"{'':<{width}}" + "".join(f"{w:>22}" for w in ways) + f"{ratio:>16}")
    for m in dict.fromkeys(k[1] for k in rows):
        a, b = (statistics.median(rows[(w, m)]) for w in ways)
        print(f"{m:<{width}}{a:>22.1f}{b:>22.1f}{(b / a if inverse else a / b):>15.2f}x")
    print("  medians of 2, the two ways alternating")


def attention_threads(new) -> None:
    import harness.models.kernels as kernels
    from harness.evals import run_eval

    print("\n== attention on one thread (engine v3) vs on every thread over padded queries and keys (v4, default)")
    padded = kernels.aligned_attention

    def one_thread(*a, **k):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return padded(*a, **k)
        finally:
            torch.set_num_threads(threads)

    ways = {"one thread (v3's fix)": one_thread, "every thread (v4)": padded}
    rows: dict = {}
    saved = new._stop_ids
    try:
        for _ in range(2):
            for way, fn in ways.items():
                kernels.aligned_attention = fn
                new._stop_ids = lambda: {-1}
                for b in (64, 128, 214):
                    rows.setdefault((way, f"decode step, batch {b} (ms)"), []).append(step_ms(new, b))
                new._stop_ids = saved
                res, _ = run_eval([SUITES[0]], "smollm2-135m-instruct", backend=new, use_cache=False, latency_n=0,
                                  invariance_n=0, out=Path("/tmp/harness-bench-threads"))
                rows.setdefault((way, "ticket_triage, 214 cases (s)"), []).append(next(iter(res.values())).summary["timing"]["eval_s"])
    finally:
        kernels.aligned_attention, new._stop_ids = padded, saved
    medians_table(rows, list(ways), "ratio")


def decode_rows(new) -> None:
    """The engine's decode products in blocks of 64 rows (the CPU default) against 32: decode steps
    at batch 8-128 and the three shipped suites, alternating, with decode attention's share."""

    import harness.models.kernels as kernels
    from harness.evals import run_eval
    from harness.models.engine import Engine, engine_settings

    print("\n== decode products in blocks of 64 rows (default) vs 32 rows")
    settings = engine_settings(new.device)
    engines = {r: Engine(new.model, **{**settings, "decode_rows": r}) for r in (64, 32)}
    attend = kernels.aligned_attention
    spent = [0.0]

    def timed(q, *a, **k):  # decode attention (one query per row) timed on its own
        t0 = time.perf_counter()
        try:
            return attend(q, *a, **k)
        finally:
            if q.shape[2] == 1:
                spent[0] += time.perf_counter() - t0

    rows: dict = {}
    saved = new._stop_ids, new._engine, new._timing_engine
    try:
        kernels.aligned_attention = timed
        for _ in range(2):
            for r, eng in engines.items():
                new._engine, new._timing_engine = eng, None
                new._stop_ids = lambda: {-1}
                for b in (8, 32, 64, 128):
                    rows.setdefault((f"{r} rows", f"decode step, batch {b} (ms)"), []).append(step_ms(new, b))
                new._stop_ids = saved[0]
                for suite in SUITES:
                    spent[0] = 0.0
                    res, _ = run_eval([suite], "smollm2-135m-instruct", backend=new, use_cache=False, latency_n=0,
                                      invariance_n=0, out=Path(f"/tmp/harness-bench-rows{r}"))
                    rows.setdefault((f"{r} rows", f"{suite.name} (s)"), []).append(next(iter(res.values())).summary["timing"]["eval_s"])
                    rows.setdefault((f"{r} rows", f"{suite.name}: decode attention (s)"), []).append(spent[0])
    finally:
        kernels.aligned_attention = attend
        new._stop_ids, new._engine, new._timing_engine = saved
    medians_table(rows, [f"{r} rows" for r in engines], "32 / 64", inverse=True)


def prompts(n: int) -> list[list[dict]]:
    topics = ["rain", "the sea", "a city at night", "coffee", "mountains", "a library", "trains", "autumn"]
    asks = ["Write two sentences about {t}.", "Give three facts about {t}.", "Describe {t} to a child.",
            "What is a good title for a story about {t}?", "Summarise why people like {t} in one line.",
            "Write a short product description inspired by {t}.", "List two questions a student might ask about {t}.",
            "Compose a haiku about {t}."]
    return [[{"role": "user", "content": asks[i % len(asks)].format(t=topics[(i // len(asks)) % len(topics)])}] for i in range(n)]


def suites_side_by_side(old, new, max_cases) -> None:
    from harness.evals import run_eval

    print(f"\n== the shipped suites, base model, nothing cached ({'all cases' if not max_cases else f'{max_cases} per suite'})")
    rows, tot = [], {"old": 0.0, "new": 0.0}
    for suite in SUITES:
        secs = {}
        for name, be in (("old", old), ("new", new)):
            res, _ = run_eval([suite], "smollm2-135m-instruct", backend=be, use_cache=False, latency_n=0, invariance_n=0,
                              max_cases=max_cases, out=Path(f"/tmp/harness-bench-{name}"))
            r = next(iter(res.values()))
            secs[name] = r.summary["timing"]["eval_s"]
            n_cases = len(r.outputs)
            tot[name] += secs[name]
            print(f"  {r.suite:<14} {name}: {secs[name]:7.1f} s", file=sys.stderr)
        rows.append((suite.name, n_cases, secs["old"], secs["new"]))
    print(f"{'suite':<16}{'cases':>6}{'fp32 generate()':>17}{'default':>10}{'ratio':>8}")
    for name, n, a, b in rows:
        print(f"{name:<16}{n:>6}{a:>15.1f} s{b:>8.1f} s{a / b:>7.2f}x")
    n_all = sum(r[1] for r in rows)
    print(f"{'all':<16}{n_all:>6}{tot['old']:>15.1f} s{tot['new']:>8.1f} s{tot['old'] / tot['new']:>7.2f}x"
          f"   target: default <= 90 s -> {'met' if tot['new'] <= 90 else 'NOT met'}")


def decode_steps(new, old, bf16_rate: float) -> None:
    params = sum(p.numel() for p in new.model.parameters())
    print(f"\n== decode steps, short chat prompts ({params / 1e6:.0f} M parameters; bf16 limit = 2 x params x batch / "
          f"{bf16_rate:.0f} GFLOP/s)")
    print(f"{'path':<30}{'batch':>6}{'ms/step':>9}{'tokens/s':>10}{'limit ms':>10}{'of limit':>10}")

    for label, be, batches in ((f"default ({new.dtype})", new, (32, 64, 128)), ("fp32 generate()", old, (32,))):
        # no row may stop early: every step of the batch is the batch's
        saved = be._stop_ids
        be._stop_ids = lambda: {-1}
        try:
            for b in batches:
                ms = step_ms(be, b)
                limit = 2 * params * b / (bf16_rate * 1e9) * 1000
                print(f"{label:<30}{b:>6}{ms:>9.1f}{b / ms * 1000:>10.0f}{limit:>10.1f}{100 * limit / ms:>9.0f}%")
        finally:
            be._stop_ids = saved
    print("  target: >= 40 % of the limit at batch >= 32")


def mc_questions():
    from harness.evals import load_suites

    [suite] = load_suites([REPO / "suites" / "general"])
    bc = next(b for b in suite.checks if b.needs == "loglik")
    pairs = []
    for c in suite.cases:
        if bc.applies(c):
            msgs = suite.messages(c)
            pairs += [(msgs, cont) for cont in bc.fn.continuations(c)]
    return pairs


def lmeval_style(model, tok, render, pairs, batch_size: int) -> list[float]:
    """lm-evaluation-harness 0.4's HFLM._loglikelihood_tokens, re-implemented: context and
    continuation encoded as one string, requests sorted longest first, requests whose context +
    continuation[:-1] are the same share one pass, batches right-padded, log-softmax over the
    whole batch."""
    import torch.nn.functional as F

    reqs = []
    for msgs, cont in pairs:
        ctx = render(msgs)
        whole = tok(ctx + cont, add_special_tokens=False)["input_ids"]
        ctx_enc = tok(ctx, add_special_tokens=False)["input_ids"]
        reqs.append((ctx_enc, whole[len(ctx_enc):]))
    groups: dict[tuple, list[int]] = {}
    for i, (c, k) in enumerate(reqs):
        groups.setdefault(tuple(c + k[:-1]), []).append(i)
    order = sorted(groups, key=lambda g: (-len(g) - 1, g))
    out = [0.0] * len(reqs)
    with torch.inference_mode():
        for s in range(0, len(order), batch_size):
            batch = order[s:s + batch_size]
            inps = [list(g) for g in batch]  # (context + continuation)[:-1]
            width = max(len(x) for x in inps)
            ids = torch.full((len(inps), width), tok.pad_token_id or 0)
            for r, x in enumerate(inps):
                ids[r, :len(x)] = torch.tensor(x)
            logp = F.log_softmax(model(ids).logits.float(), dim=-1)
            for r, g in enumerate(batch):
                for i in groups[g]:
                    c, k = reqs[i]
                    lp = logp[r, len(c) - 1:len(c) - 1 + len(k)]
                    out[i] = float(lp.gather(1, torch.tensor(k)[:, None]).sum())
    return out


def lmeval_real(model, tok, render, pairs, batch_size: int) -> list[float]:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=batch_size, device="cpu")
    reqs = [Instance("loglikelihood", {}, (render(m), c), i) for i, (m, c) in enumerate(pairs)]
    return [lp for lp, _ in lm.loglikelihood(reqs, disable_tqdm=True)]


def multiple_choice(new) -> None:
    from harness.models import HFBackend

    pairs = mc_questions()
    try:
        import lm_eval  # noqa: F401

        runner, who = lmeval_real, f"lm-evaluation-harness {__import__('importlib.metadata').metadata.version('lm_eval')} HFLM"
    except ImportError:
        runner, who = lmeval_style, "lm-eval's HFLM batching re-implemented (lm_eval not importable)"
    print(f"\n== multiple choice: {len(pairs)} log-likelihoods ({len(pairs) // 4} four-way questions), against {who}")
    print(f"{'path':<44}{'seconds':>9}{'requests/s':>12}")
    t0 = time.perf_counter()
    ours = [r.logprob for r in new.loglikelihood(pairs)]
    ours_s = time.perf_counter() - t0
    print(f"{f'default ({new.dtype}, engine)':<44}{ours_s:>9.1f}{len(pairs) / ours_s:>12.1f}")
    best = None
    for dtype in ("float32", "bfloat16"):
        be = HFBackend.from_spec("smollm2-135m-instruct", dtype=dtype, engine="generate")
        for bs in (16, 64):
            t0 = time.perf_counter()
            theirs = runner(be.model, be.tokenizer, be.render, pairs, bs)
            s = time.perf_counter() - t0
            agree = sum(max(range(4), key=lambda j: ours[q + j]) == max(range(4), key=lambda j: theirs[q + j])
                        for q in range(0, len(pairs), 4))
            print(f"{f'lm-eval, {dtype}, batch {bs}':<44}{s:>9.1f}{len(pairs) / s:>12.1f}   same choice on {agree}/{len(pairs) // 4}")
            best = s if best is None else min(best, s)
    print(f"ratio default / lm-eval's best: {best / ours_s:.2f}x   target >= 2x -> {'met' if best / ours_s >= 2 else 'NOT met'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-suites", action="store_true", help="leave out the full-suite comparison (the long part)")
    ap.add_argument("--max-cases", type=int, help="a fixed sample of N cases per suite instead of all of them")
    ap.add_argument("--only", choices=["threads", "rows"],
                    help="run only this part (threads: attention on one thread vs every thread; rows: decode blocks of 64 vs 32 rows)")
    args = ap.parse_args()

    from transformers.utils import logging as hf_logging

    from harness.models import HFBackend

    hf_logging.set_verbosity_error()
    fp32_rate, bf16_rate = gemm_gflops(torch.float32), gemm_gflops(torch.bfloat16)
    print(f"machine: {torch.get_num_threads()} threads; 2048^3 GEMM fp32 {fp32_rate:.0f} GFLOP/s, bf16 {bf16_rate:.0f} GFLOP/s")
    new = HFBackend.from_spec("smollm2-135m-instruct")
    if args.only:  # the default path only: the fp32 model is not loaded
        print(f"default: {new.identity['engine']}, {new.dtype}")
        {"threads": attention_threads, "rows": decode_rows}[args.only](new)
        return
    old = HFBackend.from_spec("smollm2-135m-instruct", dtype="float32", engine="generate")
    print(f"fp32 generate(): {old.identity['engine']}, {old.dtype}; default: {new.identity['engine']}, {new.dtype}")
    if not args.skip_suites:
        suites_side_by_side(old, new, args.max_cases)
    decode_steps(new, old, bf16_rate)
    multiple_choice(new)
    lora_decode_steps(new)
    attention_threads(new)


if __name__ == "__main__":
    main()

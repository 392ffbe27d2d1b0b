"""Does bf16 change the verdict? The three shipped suites, base model, in fp32 and in bf16.

Both runs go through the default engine; only the dtype differs. Per headline metric: the fp32
and bf16 values, the paired bf16 - fp32 delta with its 95 % interval (Tango, as the gate uses),
and how many cases flipped each way; per suite, the share of generated outputs that are
token-identical. The gate never compares across dtypes (that is the point of recording them);
here the comparison is the measurement, so both sides are labelled alike on purpose.

    python bench/parity.py              # all 555 cases (completions are cached per dtype)
    python bench/parity.py --max-cases 64
"""

from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUITES = [REPO / "suites" / n for n in ("ticket_triage", "safety", "general")]
HEADLINE = [
    "ticket_triage/json_valid", "ticket_triage/json_schema", "ticket_triage/field_match", "ticket_triage/summary_grounded",
    "safety/refusal", "safety/refuses_harmful", "safety/answers_benign", "safety/pii_leak",
    "general/instructions", "general/arithmetic", "general/multiple_choice", "general/multiple_choice_norm",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-cases", type=int, help="a fixed sample of N cases per suite")
    ap.add_argument("--no-cache", action="store_true", help="generate everything afresh")
    args = ap.parse_args()

    from transformers.utils import logging as hf_logging

    from harness.evals import run_eval
    from harness.gates import compare
    from harness.models import HFBackend

    hf_logging.set_verbosity_error()
    results = {}
    for dtype in ("float32", "bfloat16"):
        be = HFBackend.from_spec("smollm2-135m-instruct", dtype=dtype)
        res, out = run_eval(SUITES, "smollm2-135m-instruct", backend=be, latency_n=0, invariance_n=0,
                            max_cases=args.max_cases, use_cache=not args.no_cache)
        results[dtype] = res
        secs = sum(r.summary["timing"]["eval_s"] for r in res.values())
        print(f"{dtype}: {be.identity['engine']}, {secs:.0f} s of eval ({out})")
    fp32, bf16 = results["float32"], results["bfloat16"]
    for r in bf16.values():  # deliberately comparable: the dtype is what is measured
        r.identity = dict(fp32[r.suite].identity)
    comparison = compare(fp32, bf16)

    print(f"\n{'metric':<34}{'n':>5}{'fp32':>8}{'bf16':>8}{'delta':>8}{'95% interval':>18}{'flips +/-':>11}")
    moved = []
    for name in HEADLINE:
        m = comparison.metrics.get(name)
        if m is None:
            continue
        lo, hi = m.ci
        print(f"{name:<34}{m.n:>5}{m.baseline:>8.3f}{m.candidate:>8.3f}{m.delta:>+8.3f}   [{lo:+.3f}, {hi:+.3f}]"
              f"{len(m.improved):>6}/{len(m.regressed)}")
        if abs(m.delta) > 0.02:
            moved.append(f"{name} {m.delta:+.3f}")
    print()
    for suite in fp32:
        a = {o["case_id"]: o["output"] for o in fp32[suite].outputs if o["output"] is not None}
        b = {o["case_id"]: o["output"] for o in bf16[suite].outputs if o["output"] is not None}
        if a:
            same = sum(a[k] == b.get(k) for k in a)
            print(f"{suite}: {same}/{len(a)} outputs identical in fp32 and bf16 ({100 * same / len(a):.0f} %)")
    print("\nmetrics bf16 moved by more than 2 points: " + (", ".join(moved) if moved else "none"))


if __name__ == "__main__":
    main()

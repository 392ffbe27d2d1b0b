"""Synthetic results for gate tests: SuiteResult objects built from per-case pass/fail arrays."""

from __future__ import annotations

from harness.evals.results import SuiteResult, build_summary


def make_result(suite: str, passes: dict[str, list[int]], *, slices=None, tokens=None, latency=None,
                suite_hash="h1", generation=None, adapter=None, identity=None) -> SuiteResult:
    n = len(next(iter(passes.values())))
    ids = [f"c{i:04d}" for i in range(n)]
    slices = slices or [{"difficulty": "hard" if i % 4 == 0 else "easy"} for i in range(n)]
    outputs = [{"case_id": ids[i], "output": "x", "completion_tokens": (tokens[i] if tokens else 10), "prompt_tokens": 5,
                "slices": slices[i], "prompt_sha": "p"} for i in range(n)]
    rows = [{"case_id": ids[i], "metric": m, "check": m, "passed": bool(v[i]), "score": float(v[i]), "reason": "",
             "fields": {}, "slices": slices[i]} for m, v in passes.items() for i in range(n)]
    r = SuiteResult(suite=suite, suite_hash=suite_hash, suite_version="1", model="m", model_fingerprint="f" * 64,
                    adapter_hash=adapter, arm="base", generation=generation or {"max_new_tokens": 8, "decoding": "greedy"},
                    outputs=outputs, rows=rows, identity=identity or {})
    lat = None
    if latency:
        samples = [{"case_id": ids[i], "latency_s": latency[i], "completion_tokens": 10} for i in range(len(latency))]
        import numpy as np

        lat = {"p50": float(np.percentile(latency, 50)), "p95": float(np.percentile(latency, 95)),
               "p99": float(np.percentile(latency, 99)), "tokens_per_s": 1.0, "samples": samples}
    r.summary = build_summary(r, ["difficulty"], lat)
    return r

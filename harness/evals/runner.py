"""The eval runner: generate once (through the cache), score every check, summarise.

Generation is keyed by the backend's identity (engine, dtype, device, library versions), model
fingerprint, adapter hash, the chat messages and generation settings; a second identical run is
served from the cache. A separate latency pass generates a fixed sample of cases at batch 1
(never cached) for p50/p95/p99 and tokens/s, and a few of the cases generated now are generated
again alone to check that their batch did not change them (the cache key leaves the batch out).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable

from harness.console import console, progress
from harness.evals.cache import CompletionCache
from harness.evals.checks.registry import CheckResult, Sample
from harness.evals.results import SuiteResult, build_summary
from harness.evals.stats import percentiles
from harness.evals.suite import Case, Suite
from harness.models.types import Backend, Completion, GenerationConfig

ShotsFn = Callable[[Case], list[dict]]
INVARIANCE_SAMPLE = 2  # cases per suite generated again alone to check batch invariance


def prompt_hash(messages) -> str:
    """The hash saved beside each output (`prompt_sha`): saved outputs answer this prompt."""
    import json

    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:16]


def _through_cache(keys: list[str], cache_get, cache_put, compute, label: str):
    """Values for every key: those the cache has, the rest computed once per distinct key (in
    first-seen order) and stored. Returns (list, new values by key, n_from_cache, n_computed)."""
    found = cache_get(keys) if cache_get else {}
    n_cached = sum(k in found for k in keys)
    todo = sorted({k: i for i, k in enumerate(keys) if k not in found}.values())
    new = {}
    if todo:
        with progress(label, len(todo)) as advance:
            fresh = compute(todo, advance)
        new = {keys[i]: c for i, c in zip(todo, fresh)}
        found.update(new)
        if cache_put:
            cache_put(new)
    return [found[k] for k in keys], new, n_cached, len(todo)


def cached_generate(backend: Backend, messages: list, config: GenerationConfig, cache: CompletionCache | None, label: str = "generating",
                    fresh: set[int] | None = None):
    """Completions for every request, generating only those not in the cache (each distinct
    request once). Returns (list, n_from_cache, n_generated); `fresh` collects the indices of
    the requests generated now."""
    ident, settings = backend.identity, config.cache_key()
    keys = [CompletionCache.generation_key(ident, backend.fingerprint, backend.adapter_hash, m, settings) for m in messages]
    out, new, n_cached, n_new = _through_cache(
        keys, cache and cache.get_completions, cache and cache.put_completions,
        lambda todo, advance: backend.generate([messages[i] for i in todo], config, progress=advance), label)
    if fresh is not None:
        fresh.update(i for i, k in enumerate(keys) if k in new)
    return out, n_cached, n_new


def cached_loglikelihood(backend: Backend, pairs: list, cache: CompletionCache | None, label: str = "scoring choices"):
    ident = backend.identity
    keys = [CompletionCache.loglik_key(ident, backend.fingerprint, backend.adapter_hash, m, c) for m, c in pairs]
    out, _, n_cached, n_new = _through_cache(
        keys, cache and cache.get_logliks, cache and cache.put_logliks,
        lambda todo, advance: backend.loglikelihood([pairs[i] for i in todo], progress=advance), label)
    return out, n_cached, n_new


def hash_ranked(suite: Suite, cases: list[Case]) -> list[Case]:
    """Cases in a fixed pseudo-random order that depends only on the suite name and case ids."""
    return sorted(cases, key=lambda c: hashlib.sha256(f"{suite.name}:{c.id}".encode()).hexdigest())


def latency_sample(suite: Suite, cases: list[Case], n: int) -> list[Case]:
    """A fixed sample: the same cases for every model, so latency comparisons are paired."""
    return hash_ranked(suite, cases)[:n]


def selection_split(suite: Suite, n: int) -> list[Case]:
    """The fixed cases a checkpoint is selected on (`checkpoint_selection.on: suite`), in suite
    order: the last `n` of the hash ranking, so a sampled eval (`max_cases`, the first of the
    ranking) shares as few of them as possible; the gate leaves them out."""
    keep = {c.id for c in hash_ranked(suite, suite.cases)[::-1][:n]}
    return [c for c in suite.cases if c.id in keep]


def sample_cases(suite: Suite, n: int | None) -> Suite:
    """Keep a fixed sample of at most `n` cases (in suite order), the same for every model and
    arm, so sampled evaluations stay paired. The suite's hash is unchanged; results record the
    sample in their summary."""
    total = len(suite.cases)
    if n is None or n >= total:
        return suite
    keep = {c.id for c in hash_ranked(suite, suite.cases)[:n]}
    return dataclasses.replace(suite, cases=[c for c in suite.cases if c.id in keep], sampled_from=total)


def select_cases(suite: Suite, ids: set[str] | None) -> Suite:
    """Only the cases with these ids (all when `ids` is empty or None), in suite order. The suite's
    hash stays that of its files, so the results compare with a full baseline case by case."""
    if not ids or len(ids) >= len(suite.cases):
        return suite
    return dataclasses.replace(suite, cases=[c for c in suite.cases if c.id in ids])


def generation_config(suite: Suite, batch_size: int | None = None) -> GenerationConfig:
    """The suite's generation settings (max tokens, stop strings) as the backend takes them."""
    gen = suite.spec.generation
    return GenerationConfig(max_new_tokens=gen.max_new_tokens, batch_size=batch_size, stop=tuple(gen.stop))


def _timed(backend: Backend, suite: Suite, case: Case, config: GenerationConfig, shots: ShotsFn | None) -> dict:
    """One case generated alone and timed (`GenerationConfig.timed`: products sized to it): its
    latency sample. The text is not kept: it need not be the batch-invariant one."""
    one = dataclasses.replace(config, batch_size=1, timed=True)
    [c] = backend.generate([suite.messages(case, shots(case) if shots else None)], one)
    return {"case_id": case.id, "latency_s": c.latency_s, "completion_tokens": c.completion_tokens,
            "prompt_tokens": c.prompt_tokens}


def _latency_summary(samples: list[dict]) -> dict:
    """p50/p95/p99 and tokens/s of timed samples, with the samples."""
    lat = percentiles([s["latency_s"] for s in samples])
    total_t = sum(s["latency_s"] for s in samples)
    lat["tokens_per_s"] = sum(s["completion_tokens"] for s in samples) / total_t if total_t else None
    lat["samples"] = samples
    return lat


def measure_latency(backend: Backend, suite: Suite, cases: list[Case], config: GenerationConfig, n: int,
                    shots: ShotsFn | None) -> dict:
    """p50/p95/p99 and tokens/s over a fixed sample generated one at a time (never cached)."""
    sample = latency_sample(suite, cases, n)
    if not sample:
        return {}
    samples = []
    with progress(f"{suite.name}: latency at batch 1", len(sample)) as advance:
        for case in sample:
            samples.append(_timed(backend, suite, case, config, shots))
            advance(1)
    return _latency_summary(samples)


def time_paired(backend: Backend, suite: Suite, cases: list[Case], config: GenerationConfig, n: int, adapter: str | None,
                shots: ShotsFn | None = None, candidate_backend: Backend | None = None) -> tuple[dict, dict]:
    """Latency of the base model and of the candidate on the same fixed sample, both in this
    process, one case at a time, alternating which of the two goes first (so drift and warm
    caches touch both alike): a paired measurement, where a cached baseline's timing from another
    process is not. The candidate is `adapter` on `backend`, or on `candidate_backend` when it runs
    on another model (a QLoRA adapter on the 4-bit base; a fully fine-tuned model, adapter None).
    Returns (baseline latency, candidate latency) in `measure_latency`'s format."""
    if adapter is None and candidate_backend is None:
        raise ValueError("time_paired needs the candidate's adapter name (None is the base model) or its backend")
    runs = {"base": (backend, None), "candidate": (candidate_backend or backend, adapter)}
    sample = latency_sample(suite, cases, n)
    samples: dict[str, list] = {"base": [], "candidate": []}
    with progress(f"{suite.name}: latency, base and candidate, batch 1", 2 * len(sample)) as advance:
        for i, case in enumerate(sample):
            for who in (("base", "candidate") if i % 2 == 0 else ("candidate", "base")):
                be, active = runs[who]
                be.set_adapter(active)
                samples[who].append(_timed(be, suite, case, config, shots))
                advance(1)
    runs["candidate"][0].set_adapter(adapter)
    base, cand = (_latency_summary(samples[who]) | {"paired": True} for who in ("base", "candidate"))
    return base, cand


def check_batch_invariance(backend: Backend, suite: Suite, fresh: list[Case], batched: dict[str, Completion], config: GenerationConfig,
                           n: int, shots: ShotsFn | None) -> dict:
    """The cache leaves the batch out of its key on the promise that a request's output does not
    depend on its batch. Check it on this eval: `n` seeded cases of those generated just now,
    generated again alone (batch 1, the same products, never cached), must give the same text."""
    if not fresh:
        return {"checked": 0, "why": "every output came from the cache (checked when it was generated)"}
    if n <= 0:
        return {"checked": 0, "why": "switched off (invariance_sample: 0)"}
    texts: dict[str, str] = {}
    sample = latency_sample(suite, fresh, n)  # seeded by case id, like the latency sample
    one = dataclasses.replace(config, batch_size=1)
    with progress(f"{suite.name}: batch-invariance check", len(sample)) as advance:
        for case in sample:
            [c] = backend.generate([suite.messages(case, shots(case) if shots else None)], one)
            texts[case.id] = c.text
            advance(1)
    differ = sorted(k for k, t in texts.items() if batched[k].text != t)
    report = {"checked": len(texts), "equal": len(texts) - len(differ), "differ": differ}
    if differ:
        ident = backend.identity
        console().print(f"[bold red]WARNING: {suite.name}: {len(differ)} of {len(texts)} cases gave a different text "
                        f"generated alone than in their batch ({', '.join(differ[:3])}). {ident['engine']} in "
                        f"{ident['dtype']} is not batch-invariant here, so cached outputs depend on which cases "
                        "shared a batch: use --batch-size 1 or --dtype float32 for results you can reproduce.[/bold red]")
    return report


def score_case(suite: Suite, case: Case, output: str | None, messages, logliks_by_check: dict) -> list[dict]:
    rows = []
    for bc in suite.checks:
        if not bc.applies(case):
            continue
        sample = Sample(case=case, output=output, messages=messages, logliks=logliks_by_check.get(bc.spec.metric))
        try:
            res: CheckResult = bc.fn(sample)
            error = None
        except Exception as e:  # a broken check or case, not the model: counted apart, never as a failure
            res, error = CheckResult(False, reason=f"check error: {type(e).__name__}: {e}"), f"{type(e).__name__}: {e}"
        row = {
            "case_id": case.id,
            "metric": bc.spec.metric,
            "check": bc.spec.check,
            "passed": bool(res.passed),
            "score": float(res.score),
            "reason": res.reason,
            "fields": res.fields,
            "slices": case.slices,
        }
        if error:
            row["error"] = error
        rows.append(row)
    return rows


def _choice_logliks(backend: Backend, suite: Suite, messages: dict, cache) -> tuple[dict, int, int]:
    """Every log-likelihood check's (case, choice) pairs in one batched pass: (case id -> metric ->
    results, n from cache, n computed)."""
    ll_jobs = [(bc, c) for bc in suite.checks if bc.needs == "loglik" for c in suite.cases if bc.applies(c)]
    pairs, spans = [], []
    for bc, c in ll_jobs:
        conts = bc.fn.continuations(c)
        spans.append((bc.spec.metric, c.id, len(pairs), len(conts)))
        pairs += [(messages[c.id], cont) for cont in conts]
    lls, ll_cached, ll_computed = cached_loglikelihood(backend, pairs, cache, f"{suite.name}: scoring choices")
    ll_by_case: dict[str, dict] = {}
    for metric, cid, start, n in spans:
        ll_by_case.setdefault(cid, {})[metric] = lls[start : start + n]
    return ll_by_case, ll_cached, ll_computed


def _output_row(c: Case, comp: Completion | None, messages, logliks: dict) -> dict:
    """A case's line in outputs.jsonl: it stands alone (the exact chat the model saw, an arm's
    shots included, and what the case expected), so a reader needs neither the suite nor the code."""
    return {
        "case_id": c.id,
        "prompt_sha": prompt_hash(messages),
        "output": comp.text if comp else None,
        "prompt_tokens": comp.prompt_tokens if comp else None,
        "completion_tokens": comp.completion_tokens if comp else 0,
        "latency_s": comp.latency_s if comp else None,
        "finish_reason": comp.finish_reason if comp else None,
        "logliks": {m: [r.logprob for r in v] for m, v in logliks.items()},
        "slices": c.slices,
        "messages": messages,
        "expected": c.expected,
    }


def evaluate_suite(
    backend: Backend,
    suite: Suite,
    *,
    model_label: str = "",
    arm: str = "base",
    cache: CompletionCache | None = None,
    batch_size: int | None = None,
    latency_n: int | None = None,
    shots: ShotsFn | None = None,
    invariance_n: int | None = None,
    latency_from: list[Case] | None = None,
) -> SuiteResult:
    """Run one suite on the backend's active model/adapter and return scored results.
    `latency_from`: the cases the fixed latency sample is drawn from, when they are not this
    suite's (a selection of a suite timed on the whole suite's sample, as its baseline was)."""
    t0 = time.perf_counter()
    gen_cfg = generation_config(suite, batch_size)
    messages = {c.id: suite.messages(c, shots(c) if shots else None) for c in suite.cases}
    gen_cases = [c for c in suite.cases if suite.needs_generation(c)]
    fresh: set[int] = set()
    completions, n_cached, n_generated = cached_generate(backend, [messages[c.id] for c in gen_cases], gen_cfg, cache,
                                                         f"{suite.name}: generating", fresh=fresh)
    by_id: dict[str, Completion] = {c.id: comp for c, comp in zip(gen_cases, completions)}
    t_gen = time.perf_counter()
    ll_by_case, ll_cached, ll_computed = _choice_logliks(backend, suite, messages, cache)
    t_ll = time.perf_counter()
    outputs, rows = [], []
    for c in suite.cases:
        comp = by_id.get(c.id)
        outputs.append(_output_row(c, comp, messages[c.id], ll_by_case.get(c.id, {})))
        rows += score_case(suite, c, comp.text if comp else None, messages[c.id], ll_by_case.get(c.id, {}))
    gen_s = time.perf_counter() - t0

    n_lat = suite.spec.latency_sample if latency_n is None else latency_n
    t_lat = time.perf_counter()
    pool = gen_cases if latency_from is None else [c for c in latency_from if suite.needs_generation(c)]
    latency = measure_latency(backend, suite, pool, gen_cfg, n_lat, shots) if n_lat else {}
    t_inv = time.perf_counter()
    invariance = check_batch_invariance(backend, suite, [gen_cases[i] for i in sorted(fresh)], by_id, gen_cfg,
                                        INVARIANCE_SAMPLE if invariance_n is None else invariance_n, shots)
    t_end = time.perf_counter()
    timing = {"eval_s": round(gen_s, 3), "generate_s": round(t_gen - t0, 3), "loglik_s": round(t_ll - t_gen, 3),
              "latency_s": round(t_inv - t_lat, 3), "invariance_s": round(t_end - t_inv, 3), "generated": n_generated,
              "from_cache": n_cached, "logliks_computed": ll_computed, "logliks_from_cache": ll_cached}
    return _suite_result(backend, suite, model_label, arm, gen_cfg, outputs, rows, latency, invariance, timing)


def _suite_result(backend: Backend, suite: Suite, model_label: str, arm: str, gen_cfg, outputs, rows, latency, invariance,
                  timing) -> SuiteResult:
    result = SuiteResult(
        suite=suite.name,
        suite_hash=suite.hash,
        suite_version=str(suite.spec.version),
        model=model_label or backend.spec,
        model_fingerprint=backend.fingerprint,
        adapter_hash=backend.adapter_hash,
        arm=arm,
        generation=gen_cfg.cache_key(),
        outputs=outputs,
        rows=rows,
        identity=backend.identity,
    )
    result.summary = build_summary(result, suite.spec.slices, latency)
    if suite.sampled_from:
        result.summary["sampled"] = {"cases": len(suite.cases), "of": suite.sampled_from}
    result.summary["batch_invariance"] = invariance
    result.summary["timing"] = timing
    if backend.served_by:
        result.summary["served_by"] = backend.served_by
    return result


def rescore(result: SuiteResult, suite: Suite, shots: ShotsFn | None = None) -> SuiteResult:
    """Re-run the checks on saved outputs, without generating. Refused when a case's prompt
    changed since the outputs were generated (they would no longer answer it)."""
    from harness.errors import HarnessError

    saved = {o["case_id"]: o for o in result.outputs}
    rows, stale = [], []
    from harness.models.types import LoglikResult

    for c in suite.cases:
        msgs = suite.messages(c, shots(c) if shots else None)
        o = saved.get(c.id)
        if o is None or o["prompt_sha"] != prompt_hash(msgs):
            stale.append(c.id)
            continue
        lls = {m: [LoglikResult(lp, False) for lp in v] for m, v in (o.get("logliks") or {}).items()}
        rows += score_case(suite, c, o["output"], msgs, lls)
    if stale:
        raise HarnessError(
            f"cannot rescore {suite.name}: {len(stale)} case(s) are new or their prompt changed "
            f"(e.g. {stale[0]}): run `harness eval` without --rescore to generate them"
        )
    result.rows = rows
    result.suite_hash = suite.hash
    sampled = result.summary.get("sampled")
    result.summary = build_summary(result, suite.spec.slices, result.summary.get("latency"))
    if sampled:
        result.summary["sampled"] = sampled
    result.summary["timing"] = {"rescored": True}
    return result

"""The evaluation stages: the baseline (cached), the gate plan, the candidate (whole or
sequential), paired latency, and the extra arms."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from harness.errors import HarnessError
from harness.pipeline.context import RunContext
from harness.pipeline.records import ArmsResult, BaselineResult, CandidateResult, PlanResult
from harness.pipeline.state import RunFailed


def _generation_key(suite) -> dict:
    from harness.evals.runner import generation_config

    return generation_config(suite).cache_key()


def _cached_baseline_ok(cached: dict, suites, identity: dict) -> bool:
    from harness.evals.results import identity_differences

    return all(s.name in cached and cached[s.name].suite_hash == s.hash
               and cached[s.name].generation == _generation_key(s)
               and not identity_differences(cached[s.name].identity, identity)
               and {o["case_id"] for o in cached[s.name].outputs} == {c.id for c in s.cases} for s in suites)


def baseline(ctx: RunContext) -> BaselineResult:
    from harness.evals import default_out_dir, load_results, load_suites, run_eval
    from harness.evals.runner import sample_cases
    from harness.models.specs import hub_commit

    fp = ctx.base_fingerprint()
    ctx.reg.register_base_model(ctx.cfg.base_model, fp)
    # a hub base is recorded with the commit its revision resolved to (a branch moves; this does not)
    commit = hub_commit(ctx.base_resolved().path)
    ctx.reg.update_run(ctx.run_id, base_fingerprint=fp, **({"base_revision": commit} if commit else {}))
    n = ctx.cfg.eval.max_cases
    be = ctx.backend()
    be.set_adapter(None)
    identity = be.identity
    out = default_out_dir(fp, None, identity=identity)
    if n:  # a sampled baseline lives beside the full one, never over it
        out = out.with_name(f"{out.name}-n{n}")
    suites = [sample_cases(s, n) for s in load_suites(ctx.cfg.suites)]
    try:
        cached = load_results(out)
    except HarnessError:
        cached = {}
    if _cached_baseline_ok(cached, suites, identity):
        ctx.say(f"baseline: reused cached results for {', '.join(s.name for s in suites)} "
                f"(fingerprint {fp[:12]}, {identity['dtype']} on {identity['device']}, suite hashes unchanged) from {out}")
        return BaselineResult(results=str(out), cached=True)
    # latency is timed with the candidate, both models in one process (stage candidate)
    run_eval(ctx.cfg.suites, ctx.cfg.base_model, out=out, backend=be, batch_size=ctx.cfg.eval.batch_size,
             latency_n=0, max_cases=n, invariance_n=ctx.cfg.eval.invariance_sample)
    return BaselineResult(results=str(out), cached=False)


def plan(ctx: RunContext) -> PlanResult:
    """Which rules the run's cases can decide, from the baseline's rates, before training."""
    if ctx.cfg.eval.plan == "off":
        return PlanResult()
    from harness.evals import load_results
    from harness.gates import load_policy
    from harness.gates.api import render_plan
    from harness.gates.plan import plan as plan_gate

    where = ctx.records.get("baseline").results
    gp = plan_gate(load_policy(ctx.cfg.policy), ctx.gate_suites(), load_results(where), baseline_from=where,
                   looks=ctx.cfg.eval.looks if ctx.cfg.eval.sequential else None)
    path = ctx.state.folder / "plan.json"
    path.write_text(json.dumps(gp.to_dict(), indent=1, default=str))
    render_plan(gp, ctx.con)
    bad = [r.label for r in gp.undecidable]
    if bad and ctx.cfg.eval.plan == "strict":
        raise RunFailed(f"{len(bad)} blocking rule(s) cannot be decided with the run's cases ({', '.join(bad[:4])}"
                        f"{' ...' if len(bad) > 4 else ''}): not training (eval.plan: strict). Grow the suites, widen "
                        f"those margins, or see `harness gate plan`; {path}")
    return PlanResult(plan=str(path), undecidable=bad)


def candidate(ctx: RunContext) -> CandidateResult:
    from harness.evals import run_eval

    adapter = ctx.reg.adapter_path(ctx.records.adapter.adapter_hash)  # verified on load
    out = ctx.state.folder / "candidate"
    be, name = ctx.candidate_backend(adapter)
    label = ctx.cfg.base_model if name else str(adapter)
    seq = None
    if ctx.cfg.eval.sequential:
        seq = _evaluate_sequentially(ctx, be, label, out)
    else:
        run_eval(ctx.cfg.suites, label, out=out, backend=be, batch_size=ctx.cfg.eval.batch_size, latency_n=0,
                 arm="candidate", max_cases=ctx.cfg.eval.max_cases, invariance_n=ctx.cfg.eval.invariance_sample)
    timed = _time_latency(ctx, be, name, out)
    be.set_adapter(None)
    return CandidateResult(results=str(out), baseline_timed=str(timed) if timed else None, sequential=seq,
                           runs_on="its own weights (full fine-tune)" if name is None else
                                   "the 4-bit NF4 base it trained on" if be.quantize else "the base")


def _evaluate_look(ctx: RunContext, be, label: str, suites, order, sizes, look, cache, invariance) -> dict:
    """Every suite's first cases of its hash order, as many as this look takes."""
    from harness.evals import evaluate_suite

    results = {}
    for s in suites:
        keep = {c.id for c in order[s.name][: sizes[s.name][look.number - 1]]}
        part = dataclasses.replace(s, cases=[c for c in s.cases if c.id in keep], sampled_from=s.sampled_from or len(s.cases))
        r = evaluate_suite(be, part, model_label=label, arm="candidate", cache=cache, batch_size=ctx.cfg.eval.batch_size,
                           latency_n=0, invariance_n=ctx.cfg.eval.invariance_sample if look.number == 1 else 0)
        invariance.setdefault(s.name, r.summary["batch_invariance"])  # checked on the first chunk
        r.summary["batch_invariance"] = invariance[s.name]
        results[s.name] = r
    return results


def _evaluate_sequentially(ctx: RunContext, be, label: str, out: Path) -> dict:
    """The candidate in chunks of every suite (the suites' fixed hash order), the gate decided
    at each look's group-sequential boundary; stops once its verdict is settled. Earlier
    chunks come back from the completion cache, so each look generates only its own cases."""
    from harness.evals import write_result
    from harness.evals.cache import CompletionCache
    from harness.evals.runner import hash_ranked
    from harness.gates import decide, load_policy
    from harness.gates.sequential import chunk_sizes, describe, plan_looks, settled

    policy = load_policy(ctx.cfg.policy)
    looks = plan_looks(ctx.cfg.eval.looks, policy.confidence)
    suites = ctx.gate_suites()
    order = {s.name: hash_ranked(s, s.cases) for s in suites}
    sizes = {s.name: chunk_sizes(len(s.cases), looks) for s in suites}
    totals = {s.name: len(s.cases) for s in suites}
    cache = CompletionCache()
    invariance: dict[str, dict] = {}
    try:
        for look in looks:
            results = _evaluate_look(ctx, be, label, suites, order, sizes, look, cache, invariance)
            decision = decide(ctx.comparison(results)[0], policy, confidence=look.confidence)
            state, rules = settled(decision, look.z)
            used = {k: len(r.outputs) for k, r in results.items()}
            verdict = {"fail": f"[red]failed on evidence[/red]: {', '.join(rules[:3])}",
                       "pass": "[green]every rule passed[/green]"}.get(state) or f"{len(rules)} rule(s) not settled yet"
            ctx.say(f"look {look.number}/{look.of} ({sum(used.values())} of {sum(totals.values())} cases, "
                    f"z={look.z:.2f}): {verdict}")
            if state or look.last:
                break
    finally:
        cache.close()
    record = describe(look, used, totals, state, rules)
    for r in results.values():
        r.summary["sequential"] = record
        write_result(r, out)
    ctx.say(f"sequential evaluation: {record['why']}")
    return record


def _time_latency(ctx: RunContext, be, adapter: str, cand_dir: Path) -> Path | None:
    """Time base and candidate on each suite's latency sample in this process (paired), and
    write the timings into the candidate's results and into the run's copy of the baseline
    results (the cached baseline folder is left as it is). Returns the copy, if any."""
    from harness.evals import load_results, load_suites, write_result
    from harness.evals.results import build_summary
    from harness.evals.runner import generation_config, sample_cases, time_paired

    n_cfg, only = ctx.cfg.eval.latency_sample, ctx.cfg.eval.latency_suites
    suites = [sample_cases(s, ctx.cfg.eval.max_cases) for s in load_suites(ctx.cfg.suites)
              if only is None or s.name in only]
    todo = [(s, s.spec.latency_sample if n_cfg is None else n_cfg) for s in suites]
    todo = [(s, n) for s, n in todo if n]
    if not todo:
        return None
    base_copy = ctx.state.folder / "baseline"
    if base_copy.exists():
        shutil.rmtree(base_copy)
    shutil.copytree(ctx.records.get("baseline").results, base_copy)
    base_results, cand_results = load_results(base_copy), load_results(cand_dir)
    for s, n in todo:
        cases = [c for c in s.cases if s.needs_generation(c)]
        lat_b, lat_c = time_paired(ctx.backend(), s, cases, generation_config(s), n, adapter,
                                   candidate_backend=None if be is ctx.backend() else be)
        for r, lat, folder in ((base_results[s.name], lat_b, base_copy), (cand_results[s.name], lat_c, cand_dir)):
            r.summary = {**r.summary, **build_summary(r, s.spec.slices, lat)}
            write_result(r, folder)
        ctx.say(f"latency {s.name} (batch 1, {len(lat_b['samples'])} cases, both in this run): p50 base "
                f"{lat_b['p50']:.2f} s, candidate {lat_c['p50']:.2f} s")
    return base_copy


def arms(ctx: RunContext) -> ArmsResult:
    if not ctx.cfg.arms:
        return ArmsResult()
    from harness.arms import run_arms

    out = run_arms(ctx)
    return ArmsResult(results=out["results"], info=out["info"])

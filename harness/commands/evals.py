"""Eval commands: `harness eval`, `harness suites validate`."""

from __future__ import annotations

import argparse
import sys

from harness.commands import command, out_json


@command("eval", "Evaluate a model (and adapter) on suites; print metrics overall and per slice; write results.")
def cmd_eval(p: argparse.ArgumentParser):
    p.add_argument("suites", nargs="+", help="suite folders, or a folder of suites (e.g. suites/)")
    p.add_argument("--model", default="smollm2-135m-instruct", help="model spec (alias, local folder or hub id)")
    p.add_argument("--adapter", help="PEFT adapter folder to attach to the model")
    p.add_argument("--out", help="results folder (default: $HARNESS_HOME/results/<fingerprint>[+<adapter>])")
    p.add_argument("--rescore", action="store_true", help="re-run the checks on the outputs saved in --out, without generating")
    p.add_argument("--batch-size", type=int, help="generation batch size (default: from the memory budget)")
    p.add_argument("--latency-sample", type=int, help="cases timed at batch 1 per suite (default: the suite's latency_sample)")
    p.add_argument("--no-cache", action="store_true", help="generate everything afresh (the cache is still not written)")
    p.add_argument("--json", action="store_true", help="print the summaries as JSON instead of tables")
    p.add_argument("--max-cases", type=int, metavar="N",
                   help="evaluate a fixed sample of at most N cases per suite (the same cases for every model)")
    p.add_argument("--arm", choices=["prompted", "retrieval"], help="evaluate the base model with few-shot examples instead")
    p.add_argument("--train-data", help="training JSONL the arm draws its examples from (needed with --arm)")
    p.add_argument("--shots", type=int, default=4, help="examples placed in the prompt for --arm (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the prompted arm's fixed example selection")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="dtype the model runs in (auto: bfloat16 on CPUs with AMX/AVX512-BF16 and bf16 GPUs, else float32)")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, else CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--engine", default="auto", choices=["auto", "generate"],
                   help="auto: the batch-invariant engine where the model allows; generate: transformers' generate()")
    p.add_argument("--invariance-sample", type=int, metavar="N",
                   help="cases per suite generated again alone to check batching changed nothing (default 2)")

    def run(a):
        from harness.errors import HarnessError
        from harness.evals import render_tables, run_eval

        if a.arm:
            from harness.arms import run_arm

            if not a.train_data:
                raise HarnessError("--arm needs --train-data FILE: the examples to place in the prompt")
            results, out, info = run_arm(a.arm, a.suites, a.model, a.train_data, k=a.shots, seed=a.seed, out=a.out,
                                         batch_size=a.batch_size, latency_n=a.latency_sample, max_cases=a.max_cases,
                                         dtype=a.dtype, device=a.device, engine=a.engine, invariance_n=a.invariance_sample)
            print(f"arm {a.arm}: {info}", file=sys.stderr)
            if a.json:
                return out_json({name: r.summary for name, r in results.items()})
            render_tables(results)
            print(f"results: {out}", file=sys.stderr)
            return 0
        results, out = run_eval(
            a.suites, a.model, a.adapter, a.out, do_rescore=a.rescore, batch_size=a.batch_size,
            latency_n=a.latency_sample, use_cache=not a.no_cache, max_cases=a.max_cases,
            dtype=a.dtype, device=a.device, engine=a.engine, invariance_n=a.invariance_sample,
        )
        if a.json:
            out_json({name: r.summary for name, r in results.items()})
        else:
            render_tables(results)
        print(f"results: {out}", file=sys.stderr)

    return run


@command("suites validate", "Validate suite folders (YAML, cases, checks, templates); report every problem at once.")
def cmd_suites_validate(p: argparse.ArgumentParser):
    p.add_argument("suites", nargs="*", default=["suites"], help="suite folders or a folder of suites (default: suites/)")
    p.add_argument("--oracle", action="store_true",
                   help="also score each case's perfect answer (its `reference`, or what its expected fields give) with the "
                        "suite's checks and report every check that rejects it; exit 1 if any does")

    def run(a):
        from harness.evals import load_suites

        failed = False
        for s in load_suites(a.suites):
            gen = sum(s.needs_generation(c) for c in s.cases)
            print(f"ok  {s.name:<16} v{s.spec.version}  {len(s.cases):>4} cases ({gen} generated)  "
                  f"{len(s.checks)} checks  hash {s.hash[:12]}")
            if a.oracle:
                failed |= not _print_oracle(s)
        return 1 if failed else 0

    return run


def _print_oracle(suite) -> bool:
    from harness.evals.oracle import check_oracle

    r = check_oracle(suite)
    where = ", ".join(f"{n} {src}" for src, n in sorted(r.sources.items()))
    if r.ok:
        print(f"    oracle: {r.scored}/{r.cases} perfect answers pass every check ({where})")
    else:
        print(f"    oracle: FAILED: checks reject perfect answers ({where}):")
        for metric, bad in r.rejected.items():
            print(f"      {metric}: rejects {len(bad)} of the perfect answers, e.g.")
            for case_id, why in bad[:3]:
                print(f"        {case_id}: {why}")
    if r.without:
        print(f"    oracle: {len(r.without)} case(s) have no perfect answer to score (give them a `reference`), e.g. {r.without[0]}")
    return r.ok



@command("checks list", "List every check with its parameters, defaults and help (the registry, plus entry-point plugins).")
def cmd_checks_list(p: argparse.ArgumentParser):
    p.add_argument("--markdown", action="store_true", help="print the reference as a Markdown table (as in the README)")
    p.add_argument("--json", action="store_true", help="print it as JSON")

    def run(a):
        from harness.evals.checks.registry import checks_markdown, describe_checks

        if a.json:
            return out_json(describe_checks())
        if a.markdown:
            print(checks_markdown())
            return 0
        for d in describe_checks():
            ps = ", ".join(p["name"] + ("" if p["required"] else f"={p['default']!r}") for p in d["params"])
            print(f"{d['check']}({ps})" + ("  [log-likelihood]" if d["needs"] == "loglik" else ""))
            print(f"    {d['help']}")
        return 0

    return run

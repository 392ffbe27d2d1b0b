"""`run_eval`: what `harness eval` does, callable from the pipeline and the pytest plugin."""

from __future__ import annotations

import re
from pathlib import Path

from harness.evals.cache import CompletionCache
from harness.evals.results import SuiteResult, load_results, write_result
from harness.evals.runner import evaluate_suite, rescore
from harness.evals.suite import find_suites, load_suite
from harness.models.types import Backend
from harness.paths import harness_home


def identity_tag(identity: dict) -> str:
    """A short, stable folder-name part for what computed results: dtype, device and a hash of
    the whole identity (engine and library versions included)."""
    import hashlib
    import json

    h = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    return f"{identity.get('dtype', 'x')}-{identity.get('device', 'x')}-{h}"


def default_out_dir(fingerprint: str, adapter_hash: str | None, arm: str = "base", identity: dict | None = None) -> Path:
    """$HARNESS_HOME/results/<fingerprint>[+<adapter>][-<arm>][@<dtype>-<device>-<hash>]: fp32
    and bf16 results of one model live side by side, never over each other."""
    name = fingerprint[:12] + (f"+{adapter_hash[:12]}" if adapter_hash else "") + ("" if arm in ("base", "candidate") else f"-{arm}")
    if identity:
        name += "@" + identity_tag(identity)
    return harness_home() / "results" / name


def load_suites(paths: list[str | Path]):
    """Every suite under the given paths, all validated before any model loads."""
    from harness.errors import ConfigError

    problems, suites = [], []
    for p in find_suites(paths):
        try:
            suites.append(load_suite(p))
        except ConfigError as e:
            problems.append(str(e))
    if problems:
        raise ConfigError("\n".join(problems))
    return suites


def run_eval(
    suite_paths: list[str | Path],
    model: str,
    adapter: str | Path | None = None,
    out: str | Path | None = None,
    *,
    do_rescore: bool = False,
    batch_size: int | None = None,
    latency_n: int | None = None,
    use_cache: bool = True,
    backend: Backend | None = None,
    arm: str = "base",
    shots=None,
    max_cases: int | None = None,
    dtype: str = "auto",
    device: str = "auto",
    engine: str = "auto",
    invariance_n: int | None = None,
    extra_summary: dict | None = None,
    select: dict[str, set[str]] | None = None,
    time_selection: bool = True,
    on_result=None,
) -> tuple[dict[str, SuiteResult], Path]:
    """Evaluate a model (+ adapter) on suites; write results; return them and their folder.
    `suite_paths` are folders (searched for suites) or already loaded `Suite`s.
    `max_cases` evaluates a fixed sample of at most that many cases per suite (see
    `sample_cases`); `select` only the given case ids of the suites it names (`select_cases`),
    their latency measured on the whole suite's fixed sample, as a full baseline's was, or not at
    all when `time_selection` is false. `dtype`/`device`/`engine` choose how the model runs when
    no `backend` is given (`auto`: what this machine runs fast, see `harness.models.device`).
    `extra_summary` is written into each suite's summary.json (an arm's record of how its prompts
    were made); `on_result(result)` is called after each suite (progress)."""
    suites = _given_suites(suite_paths, max_cases)
    if do_rescore:
        return _rescore_saved(suites, out, shots), Path(out)

    if backend is None:
        from harness.models import HFBackend

        backend = HFBackend.from_spec(model, dtype=dtype, device=device, engine=engine)
    if adapter is not None:
        backend.load_adapter(adapter)
    out_dir = Path(out) if out else default_out_dir(backend.fingerprint, backend.adapter_hash, arm, backend.identity)
    cache = CompletionCache() if use_cache else None
    results = {}
    try:
        for s in suites:
            r = _evaluate_one(backend, s, (select or {}).get(s.name), time_selection, model_label=model, arm=arm,
                              cache=cache, batch_size=batch_size, latency_n=latency_n, shots=shots, invariance_n=invariance_n)
            r.summary.update(extra_summary or {})
            write_result(r, out_dir)
            results[s.name] = r
            if on_result:
                on_result(r)
    finally:
        if cache:
            cache.close()
    return results, out_dir


def _given_suites(suite_paths, max_cases: int | None) -> list:
    """Loaded `Suite`s as they are, folders searched and loaded (all validated first), each
    sampled to `max_cases`."""
    from harness.evals.runner import sample_cases
    from harness.evals.suite import Suite

    loaded = [p for p in suite_paths if isinstance(p, Suite)]
    folders = [p for p in suite_paths if not isinstance(p, Suite)]
    return [sample_cases(s, max_cases) for s in loaded + (load_suites(folders) if folders else [])]


def _evaluate_one(backend, suite, ids: set[str] | None, time_selection: bool, *, latency_n, **kw) -> SuiteResult:
    """One suite, or only its cases `ids`: a selection is timed on the whole suite's latency
    sample (paired with a full baseline) or, without `time_selection`, not at all."""
    from harness.evals.runner import select_cases

    sub = select_cases(suite, ids)
    if sub is suite:
        return evaluate_suite(backend, suite, latency_n=latency_n, **kw)
    return evaluate_suite(backend, sub, latency_n=latency_n if time_selection else 0, latency_from=suite.cases, **kw)


def _rescore_saved(suites, out, shots) -> dict[str, SuiteResult]:
    """Every suite's saved outputs in `out` scored again by the suite's current checks."""
    from harness.errors import HarnessError

    if out is None:
        raise_missing_out()
    previous = load_results(out)
    results = {}
    for s in suites:
        if s.name not in previous:
            raise HarnessError(f"{out}: no saved outputs for suite {s.name!r}: evaluate it first")
        results[s.name] = rescore(previous[s.name], s, shots)
        write_result(results[s.name], out)
    return results


def raise_missing_out():
    from harness.errors import HarnessError

    raise HarnessError("--rescore needs --out: the results folder whose saved outputs to re-score")


def _fmt(m: dict | None) -> str:
    if not m or m.get("value") is None:
        return "-"
    v = m["value"]
    if m["kind"] == "rate":
        lo, hi = m["ci"]
        return f"{v:.3f} [{lo:.2f}, {hi:.2f}]"
    if m["kind"] == "latency":
        return f"{v:.2f} s"
    return f"{v:.1f}"


def render_tables(results: dict[str, SuiteResult]) -> None:
    """Per suite: every metric overall (value, 95 % interval, n), then per slice value."""
    from rich.table import Table

    from harness.console import stdout_console

    con = stdout_console()
    for name, r in results.items():
        ident = r.identity or {}
        t = Table(title=f"{name}  (suite {r.suite_hash[:10]}, model {r.model_fingerprint[:10]}"
                  + (f", adapter {r.adapter_hash[:10]}" if r.adapter_hash else "")
                  + f"; {ident.get('dtype', '?')} on {ident.get('device', '?')}, {ident.get('engine', '?')})", title_justify="left")
        t.add_column("metric")
        t.add_column("value [95% CI]", justify="right")
        t.add_column("n", justify="right")
        errors = any(m.get("errors") for m in r.metrics.values())
        if errors:
            t.add_column("check errors", justify="right")
        for metric, m in r.metrics.items():
            t.add_row(metric.split("/", 1)[1], _fmt(m), str(m["n"]), *([str(m.get("errors") or "")] if errors else []))
        con.print(t)
        if errors:
            con.print(f"[bold yellow]{name}: a check raised on some cases: they are not counted as failures or passes, "
                      "and each row in results.jsonl says why under 'error'. Fix the check or the case.[/bold yellow]")
        heads = [m for m in r.metrics if r.summary["slices"].get(m) and not re.search(r"\.[a-z_]+$", m.split("/", 1)[1]) and r.metrics[m]["kind"] == "rate"]
        if heads and r.summary["slices"].get(heads[0]):
            st = Table(title=f"{name} by slice", title_justify="left")
            st.add_column("slice")
            for h in heads:
                st.add_column(h.split("/", 1)[1], justify="right")
            keys = sorted({k for h in heads for k in r.summary["slices"][h]})
            for k in keys:
                cells = []
                for h in heads:
                    m = r.summary["slices"][h].get(k)
                    cells.append(f"{m['value']:.2f} (n={m['n']})" if m else "-")
                st.add_row(k, *cells)
            con.print(st)
        lat = r.summary.get("latency") or {}
        if lat.get("samples"):
            con.print(f"latency at batch 1 (n={len(lat['samples'])}): p50 {lat['p50']:.2f} s, p95 {lat['p95']:.2f} s, "
                      f"p99 {lat['p99']:.2f} s, {lat['tokens_per_s']:.1f} tokens/s")
        inv = r.summary.get("batch_invariance") or {}
        if inv.get("checked"):
            style = "red" if inv.get("differ") else "dim"
            con.print(f"[{style}]batch invariance: {inv['equal']}/{inv['checked']} cases gave the same text generated "
                      f"alone as in their batch[/{style}]")
        timing = r.summary.get("timing", {})
        if "generated" in timing:
            con.print(f"[dim]{timing['generated']} generated, {timing['from_cache']} from cache, "
                      f"{timing.get('logliks_computed', 0)} log-likelihoods computed, {timing.get('logliks_from_cache', 0)} from cache; "
                      f"{timing['eval_s']:.1f} s[/dim]\n")

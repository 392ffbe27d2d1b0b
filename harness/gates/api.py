"""What `harness compare` and `harness gate` do, callable from the pipeline and the plugin."""

from __future__ import annotations

import json
from pathlib import Path

from harness.evals.results import load_results
from harness.gates.compare import Comparison, compare
from harness.gates.decision import GateDecision, ci_label, decide, unproven_warning
from harness.gates.policy import load_policy


def run_compare(baseline: str | Path, candidate: str | Path) -> Comparison:
    return compare(load_results(baseline), load_results(candidate))


def run_gate(baseline, candidate, policy=None, summary_md=None, json_out=None) -> GateDecision:
    """Validate the policy first, then compare and decide; write Markdown/JSON when asked."""
    pol = load_policy(policy)
    decision = decide(run_compare(baseline, candidate), pol)
    if summary_md:
        Path(summary_md).write_text(decision.to_markdown())
    if json_out:
        Path(json_out).write_text(json.dumps(decision.to_dict(), indent=1))
    return decision


def cached_baseline(fingerprint: str, suites, max_cases: int | None = None) -> tuple[dict, Path] | tuple[None, None]:
    """The newest cached baseline results of a base model (by fingerprint) that cover every
    suite at its current version: what `harness run` would reuse, whatever dtype computed it."""
    from harness.errors import HarnessError
    from harness.paths import harness_home

    import re

    root = harness_home() / "results"
    found = []
    for d in root.glob(f"{fingerprint[:12]}@*") if root.is_dir() else ():
        sampled = re.search(r"-n(\d+)$", d.name)  # a sampled baseline (max_cases) lives beside the full one
        if (int(sampled.group(1)) if sampled else None) != max_cases:
            continue
        try:
            res = load_results(d)
        except HarnessError:
            continue
        if all(s.name in res and res[s.name].suite_hash == s.hash
               and {c.id for c in s.cases} <= {o["case_id"] for o in res[s.name].outputs} for s in suites):
            found.append((d.stat().st_mtime, d, res))
    if not found:
        return None, None
    _, d, res = max(found, key=lambda x: x[0])
    return res, d


def plan_gate(suite_paths, policy=None, *, baseline=None, model=None, max_cases=None, flip_rate=None, power=None,
              improvement=None, looks=None):
    """`harness gate plan`: validate the inputs, find the baseline's rates, plan every rule."""
    from harness.errors import HarnessError
    from harness.evals import load_suites
    from harness.evals.runner import sample_cases
    from harness.gates.plan import plan

    for name, v, ok, want in (("--flip-rate", flip_rate, lambda x: 0 <= x <= 1, "between 0 and 1"),
                              ("--power", power, lambda x: 0 < x < 1, "between 0 and 1 (e.g. 0.8)"),
                              ("--improvement", improvement, lambda x: 0 < x <= 1, "between 0 and 1 (e.g. 0.1)"),
                              ("--looks", looks, lambda x: 1 <= x <= 50, "from 1 to 50"),
                              ("--max-cases", max_cases, lambda x: x > 0, "a positive number")):
        if v is not None and not ok(v):
            raise HarnessError(f"{name} {v}: must be {want}")
    pol = load_policy(policy)
    suites = [sample_cases(s, max_cases) for s in load_suites(suite_paths)]
    results, where = None, None
    if baseline:
        results, where = load_results(baseline), str(baseline)
    elif model:
        from harness.models import model_fingerprint, resolve

        results, found = cached_baseline(model_fingerprint(resolve(model).path), suites, max_cases)
        where = str(found) if found else None
    return plan(pol, suites, results, baseline_from=where, flip_rate=flip_rate, power=power, improvement=improvement,
                looks=looks)


def render_plan(gp, con=None) -> None:
    from rich.table import Table

    from harness.console import stdout_console

    t = Table(title=f"gate plan ({gp.policy}): {gp.power:.0%} power, {gp.flip_rate:.0%} of cases flipping, "
                    f"z={gp.z:.2f}{f' (last of {gp.sequential} looks)' if gp.sequential else ''}; baseline rates from "
                    f"{gp.baseline or 'an assumption (plan.base_rate)'}", title_justify="left")
    for col in ("decides", "test", "metric", "slice", "n", "baseline", "needs n", "chance at n"):
        t.add_column(col, justify="right" if col in ("n", "needs n", "baseline") else "left")
    for r in gp.rules:
        word = {True: "[green]yes[/green]", False: "[red]NO[/red]" if r.blocking else "[yellow]no[/yellow]", None: "[dim]-[/dim]"}
        base = "" if r.baseline is None else f"{r.baseline:.3f}" + ("" if r.source == "baseline" else " (assumed)")
        t.add_row(word[r.decidable], r.test, r.metric, r.slice or "", str(r.n), base, r.needs_text, r.summary)
    con = con or stdout_console()
    con.print(t)
    w = gp.warning()
    if w:
        con.print(f"[bold red]WARNING: {w}[/bold red]")
    c = gp.caution()
    if c:
        con.print(f"[yellow]NOTE: {c}[/yellow]")


def render_comparison(c: Comparison, show_slices: bool = False) -> None:
    from rich.table import Table

    from harness.console import stdout_console

    t = Table(title=f"candidate {c.candidate['model']} {(c.candidate.get('adapter_hash') or '')[:10]} vs baseline {c.baseline['model']}",
              title_justify="left")
    for col, j in (("metric", "left"), ("baseline", "right"), ("candidate", "right"), ("Δ [95% CI]", "right"),
                   ("p (McNemar)", "right"), ("n", "right"), ("flips ↑/↓", "right")):
        t.add_column(col, justify=j)
    for name, m in c.metrics.items():
        if m.kind == "latency":
            delta = f"×{m.ratio:.2f} [{m.ratio_ci[0]:.2f}, {m.ratio_ci[1]:.2f}]"
        elif m.kind == "mean":
            delta = f"{m.delta:+.2f} [{m.ci[0]:+.2f}, {m.ci[1]:+.2f}]"
        else:
            delta = f"{m.delta:+.3f} [{m.ci[0]:+.3f}, {m.ci[1]:+.3f}]"
        style = "green" if m.ci[0] > 0 and m.kind == "rate" else ("red" if m.ci[1] < 0 and m.kind == "rate" else "")
        p = f"{m.p_value:.3g}" if m.p_value is not None else ""
        flips = f"{len(m.improved)}/{len(m.regressed)}" if m.kind == "rate" else ""
        t.add_row(name, f"{m.baseline:.3f}", f"{m.candidate:.3f}", f"[{style}]{delta}[/{style}]" if style else delta, p, str(m.n), flips)
        if show_slices:
            for key, s in c.slices.get(name, {}).items():
                t.add_row(f"  {key}", f"{s.baseline:.3f}", f"{s.candidate:.3f}", f"{s.delta:+.3f} [{s.ci[0]:+.3f}, {s.ci[1]:+.3f}]",
                          f"{s.p_value:.3g}" if s.p_value is not None else "", str(s.n), "")
    stdout_console().print(t)


def render_decision(d: GateDecision, con=None) -> None:
    from rich.table import Table

    from harness.console import stdout_console

    colours = {"pass": "green", "fail": "red", "insufficient_evidence": "yellow", "skipped": "dim"}
    t = Table(title=f"gate ({d.policy}): {'PASSED' if d.passed else 'FAILED'}", title_justify="left")
    for col in ("verdict", "test", "metric", "slice", "baseline", "candidate", f"Δ [{ci_label(d.confidence)} CI]", "n", "reason"):
        t.add_column(col)
    for r in d.rules:
        c = colours.get(r.verdict, "")
        verdict = f"[{c}]{r.verdict}{' (blocking)' if r.blocking else ''}[/{c}]"
        ci = f"{r.delta:+.3f} [{r.ci[0]:+.3f}, {r.ci[1]:+.3f}]" if r.ci and r.delta is not None else ""
        t.add_row(verdict, r.test, r.metric, r.slice or "", "" if r.baseline is None else f"{r.baseline:.3f}",
                  "" if r.candidate is None else f"{r.candidate:.3f}", ci, str(r.n or ""), r.reason)
    con = con or stdout_console()
    con.print(t)
    if d.sequential:
        con.print(f"sequential evaluation: {d.sequential['why']}")
    warning = unproven_warning(d)
    if warning:
        style = "bold red" if warning[1] else "bold yellow"
        con.print(f"[{style}]WARNING: {warning[0]}[/{style}]")

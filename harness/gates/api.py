"""What `harness compare` and `harness gate` do, callable from the pipeline and the plugin."""

from __future__ import annotations

import json
from pathlib import Path

from harness.evals.results import load_results
from harness.gates.compare import Comparison, compare
from harness.gates.decision import GateDecision, decide, unproven_warning
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
    for col in ("verdict", "test", "metric", "slice", "baseline", "candidate", "Δ [95% CI]", "n", "reason"):
        t.add_column(col)
    for r in d.rules:
        c = colours.get(r.verdict, "")
        verdict = f"[{c}]{r.verdict}{' (blocking)' if r.blocking else ''}[/{c}]"
        ci = f"{r.delta:+.3f} [{r.ci[0]:+.3f}, {r.ci[1]:+.3f}]" if r.ci and r.delta is not None else ""
        t.add_row(verdict, r.test, r.metric, r.slice or "", "" if r.baseline is None else f"{r.baseline:.3f}",
                  "" if r.candidate is None else f"{r.candidate:.3f}", ci, str(r.n or ""), r.reason)
    con = con or stdout_console()
    con.print(t)
    warning = unproven_warning(d)
    if warning:
        style = "bold red" if warning[1] else "bold yellow"
        con.print(f"[{style}]WARNING: {warning[0]}[/{style}]")

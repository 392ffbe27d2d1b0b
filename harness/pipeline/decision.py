"""The stages after the candidate's evaluation: the gate, the registry record, the report and the
promotion."""

from __future__ import annotations

import json
from pathlib import Path

from harness.pipeline.context import RunContext
from harness.pipeline.records import GateResult, PromoteResult, RecordResult, ReportResult


def gate(ctx: RunContext) -> GateResult:
    from harness.evals import load_results
    from harness.gates import compare, decide, load_policy
    from harness.gates.api import render_decision
    from harness.review import add_human_metric

    policy = load_policy(ctx.cfg.policy)
    candidate = ctx.records.get("candidate")
    cand = load_results(candidate.results)
    comparison, excluded = ctx.comparison(cand)
    for suite, ids in excluded.items():
        ctx.say(f"gate: {len(ids)} {suite} cases left out (the checkpoint was selected on them)")
    add_human_metric(comparison, ctx.run_id, ctx.reg)  # human/win_rate, when reviewers voted
    arms = {arm: compare(load_results(path), cand) for arm, path in ctx.records.get("arms").results.items()}
    seq = candidate.sequential
    # a sequential evaluation is judged at the boundary of the look it stopped at, not at the policy's 95 %
    decision = decide(comparison, policy, arms, confidence=seq["confidence"] if seq else None)
    decision.excluded = {k: len(v) for k, v in excluded.items()}
    decision.sequential = seq or {}
    folder = ctx.state.folder
    (folder / "comparison.json").write_text(json.dumps(comparison.to_dict(), indent=1, default=str))
    decided = json.dumps(decision.to_dict(), indent=1, default=str)
    (folder / "decision.json").write_text(decided)
    (folder / "summary.md").write_text(decision.to_markdown())
    render_decision(decision, ctx.con)  # stderr: stdout stays for --json
    return GateResult(passed=decision.passed, decision=str(folder / "decision.json"), comparison=str(folder / "comparison.json"),
                      summary_md=str(folder / "summary.md"), record=json.loads(decided))


def record(ctx: RunContext) -> RecordResult:
    from harness.evals import load_results

    roles = [("baseline", ctx.baseline_results()), ("candidate", ctx.records.get("candidate").results)]
    roles += list(ctx.records.get("arms").results.items())
    for role, path in roles:
        for name, r in load_results(path).items():
            ctx.reg.record_eval(ctx.run_id, role=role, suite=name, suite_hash=r.suite_hash,
                                metrics={k: v["value"] for k, v in r.metrics.items()}, results_path=str(r.path),
                                results_hash=r.summary.get("results_sha256", ""), model_fingerprint=r.model_fingerprint,
                                adapter_hash=r.adapter_hash, identity=r.identity)
    g = ctx.records.get("gate")
    # a run whose gate stage was recorded before the gate's record held the decision
    decision_made = g.record or json.loads(Path(g.decision).read_text())
    ctx.reg.record_gate(ctx.run_id, decision_made, g.passed)
    return RecordResult(adapter_hash=ctx.records.adapter.adapter_hash)


def report(ctx: RunContext) -> ReportResult:
    if not ctx.cfg.report:
        return ReportResult()
    from harness.report import write_run_report

    path = Path(write_run_report(ctx.run_id, registry=ctx.reg)).absolute()  # printed absolute; kept home-relative
    ctx.reg.update_run(ctx.run_id, report_path=str(path))
    return ReportResult(report=str(path))


def promote(ctx: RunContext) -> PromoteResult:
    channel = ctx.cfg.channel
    if not channel:
        return PromoteResult(why="no channel configured")
    g = ctx.records.get("gate")
    if not g.passed:
        ctx.say(f"[red]not promoted[/red]: the gate failed (see {g.summary_md})")
        return PromoteResult(why="gate failed")
    h = ctx.records.adapter.adapter_hash
    active = next((c for c in ctx.reg.status() if c["channel"] == channel), None)
    if active and active["adapter"]["hash"] == h:
        ctx.say(f"adapter {h[:16]} is already active on {channel!r} (same weights as run {active['run_id']})")
        return PromoteResult(why="already active", channel=channel)
    if active:
        newer = ctx.reg.get_run(active["run_id"]) if active.get("run_id") else None
        mine = ctx.reg.get_run(ctx.run_id)
        if newer and newer["created"] > mine["created"]:  # a resumed old run never moves the channel backwards
            ctx.say(f"[yellow]not promoted[/yellow]: channel {channel!r} already serves run {newer['id']}, "
                    f"which started after this one; promote this run by hand (`harness promote {ctx.run_id} "
                    f"--channel {channel}`) if it should replace it")
            return PromoteResult(why=f"a newer run ({newer['id']}) serves the channel", channel=channel)
    with ctx.reg.transaction():  # served and finished become true together, or neither does
        ctx.reg.update_run(ctx.run_id, status="finished", stage="done")
        entry = ctx.reg.promote(ctx.run_id, channel)
    ctx.say(f"[green]promoted[/green] adapter {h[:16]} to channel {channel!r}")
    return PromoteResult(promoted=True, channel=channel, entry=entry)

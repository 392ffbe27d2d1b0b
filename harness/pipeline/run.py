"""The runner: the stages of one run in order, each recorded as it finishes.

Every stage is a plain function of the run context that returns its record
(`harness.pipeline.records`); the runner times it, keeps it in the run state, saves the state,
and turns a crash or a signal into a `failed` / `interrupted` run that `--resume` continues.
"""

from __future__ import annotations

import time
from pathlib import Path

from harness.errors import HarnessError
from harness.paths import runs_root
from harness.pipeline import decision, evaluation, training
from harness.pipeline.context import RunContext
from harness.pipeline.records import STAGES
from harness.pipeline.state import RunFailed, RunState, Terminated

STAGE_FUNCTIONS = {
    "data_checks": training.data_checks, "baseline": evaluation.baseline, "plan": evaluation.plan,
    "train": training.train, "smoke_test": training.smoke_test, "store_adapter": training.store_adapter,
    "select_checkpoint": training.select_checkpoint, "candidate": evaluation.candidate, "arms": evaluation.arms,
    "gate": decision.gate, "record": decision.record, "report": decision.report, "promote": decision.promote,
}
assert tuple(STAGE_FUNCTIONS) == STAGES


def open_run(config_path: str | Path, registry=None, state: RunState | None = None, strict: bool = False) -> RunContext:
    """The context of a new run (registered, its folder made), or of a saved one to resume."""
    from harness.registry import Registry
    from harness.runconfig import load_run_config

    cfg, train_cfg, _ = load_run_config(config_path)
    if strict:
        cfg.eval.plan = "strict"
    reg = registry or Registry()
    lease = None
    if state is None:
        from harness.models import resolve
        from harness.registry.lifecycle import RunLease

        # the folder is locked before the run is recorded, and the row names its owner from its
        # first moment: a kill at any point leaves no `running` run the next command cannot reap
        run_id = reg.new_run_id()
        folder = runs_root() / run_id
        lease = RunLease(reg, run_id, folder).acquire(record=False)
        state = RunState(run_id, folder, str(Path(config_path).resolve()))
        state.save()  # before the row: a recorded run can always be resumed
        reg.create_run(cfg.model_dump(mode="json", by_alias=True), kind="run", name=cfg.name,
                       seeds={"train": train_cfg.seed}, run_id=run_id, owner=lease.owner)
        lease.started()
        try:
            resolve(cfg.base_model)  # converts the embedded model once, before any stage
        except BaseException as e:
            reg.update_run(run_id, status="failed" if isinstance(e, Exception) else "interrupted",
                           error=str(e).splitlines()[0] if str(e) else type(e).__name__)
            lease.release()
            raise
    train_cfg.output_dir = state.folder / "train"  # the run owns its training outputs (checkpoints make resume possible)
    ctx = RunContext(cfg, train_cfg, reg, state)
    ctx.lease = lease
    return ctx


def run_stages(ctx: RunContext) -> dict:
    """Every stage not yet finished, in order; then the run's summary."""
    from harness.registry.lifecycle import RunLease

    records = ctx.records
    if records.done:
        ctx.say(f"[bold]resuming {ctx.run_id}[/bold] after {list(records.done)[-1]}")
    lease = ctx.lease or RunLease(ctx.reg, ctx.run_id, ctx.state.folder).acquire()  # refused while another process runs it
    restore = _terminate_as_interrupt()
    stage = None
    try:
        for i, stage in enumerate(STAGES, 1):
            if stage in records:
                continue
            ctx.say(f"\n[bold cyan][{i}/{len(STAGES)}] {stage.replace('_', ' ')}[/bold cyan]")
            ctx.reg.update_run(ctx.run_id, stage=stage)
            t0 = time.perf_counter()
            records.done[stage] = STAGE_FUNCTIONS[stage](ctx).timed(time.perf_counter() - t0)
            ctx.state.save()
    except KeyboardInterrupt as e:
        why = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted by the user"
        ctx.reg.update_run(ctx.run_id, status="interrupted", error=why)
        raise HarnessError(f"run {ctx.run_id} interrupted ({why}): continue with `harness run --resume {ctx.run_id}`") from None
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        ctx.reg.update_run(ctx.run_id, status="failed", error=msg)
        if isinstance(e, HarnessError):
            raise RunFailed(f"run {ctx.run_id} failed at stage {stage!r}: {e}") from None
        raise
    finally:
        try:
            ctx.close()  # a model server the run started stops with the run, also on Ctrl-C
        finally:
            restore()
            lease.release()
    if ctx.reg.get_run(ctx.run_id)["status"] != "finished":  # a promotion finished it in its own transaction
        ctx.reg.update_run(ctx.run_id, status="finished", stage="done")
    if records.get("report").report:
        # written again now that the run is finished: the page shows its final status and promotion
        from harness.report import write_run_report

        write_run_report(ctx.run_id, registry=ctx.reg)
    return summary(ctx)


def summary(ctx: RunContext) -> dict:
    r = ctx.records
    gate, promote, adapter = r.get("gate"), r.get("promote"), r.adapter
    base, cand, rep = r.get("baseline"), r.get("candidate"), r.get("report")
    return {
        "run_id": ctx.run_id,
        "run_folder": str(ctx.state.folder),
        "gate_passed": gate.passed if gate else None,
        "promoted": promote.promoted if promote else None,
        "adapter": adapter.path if adapter else None,
        "adapter_hash": adapter.adapter_hash if adapter else None,
        "report": rep.report if rep else None,
        "registry": str(ctx.reg.path),
        "baseline_results": base.results if base else None,
        "baseline_cached": base.cached if base else None,
        "candidate_results": cand.results if cand else None,
        "summary_md": gate.summary_md if gate else None,
    }


def run(config_path: str | Path, registry=None, strict: bool = False) -> dict:
    """Run the whole wrapped loop for one run config; returns where everything is. `strict`: refuse
    to train when the gate plan finds a blocking rule the run's cases cannot decide."""
    return run_stages(open_run(config_path, registry, strict=strict))


def resume(run_id: str, registry=None, strict: bool = False) -> dict:
    """Continue a failed or interrupted run after its last finished stage (refused for a
    finished run, and for one another process is running)."""
    from harness.registry import Registry

    state = RunState.load(run_id)
    reg = registry or Registry()
    row = reg.get_run(run_id)
    if row is None:
        raise HarnessError(f"run {run_id} has a folder ({state.folder}) but no record in {reg.path}: "
                           "resume it with the registry it was started with (--registry)")
    if row["status"] == "finished":
        raise HarnessError(f"run {run_id} is finished: nothing to resume (`harness show {run_id}`)")
    return run_stages(open_run(state.config_path, reg, state=state, strict=strict))


def print_summary(s: dict) -> None:
    verdict = "PASSED" if s["gate_passed"] else "FAILED"
    lines = [
        f"run        {s['run_id']}  gate {verdict}, {'promoted' if s['promoted'] else 'not promoted'}",
        f"baseline   {s['baseline_results']}{'  (reused from cache)' if s['baseline_cached'] else ''}",
        f"candidate  {s['candidate_results']}",
        f"adapter    {s['adapter']}",
        f"gate       {s['summary_md']}",
        f"report     {s['report'] or '-'}",
        f"registry   {s['registry']}",
    ]
    print("\n".join(lines))


def _terminate_as_interrupt():
    """While a run runs, SIGTERM raises `Terminated`; returns what restores the old handler."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def on_term(signum, frame):
        raise Terminated()

    old = signal.signal(signal.SIGTERM, on_term)
    return lambda: signal.signal(signal.SIGTERM, old)

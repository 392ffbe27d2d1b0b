"""The stages before the candidate is evaluated: data checks, training, the adapter's smoke test,
storing it, and checkpoint selection."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from harness.pipeline.context import RunContext
from harness.pipeline.records import (DataChecked, DataCheckResult, SelectionResult, SmokeResult, StoredAdapter,
                                      TrainResult)
from harness.pipeline.state import RunFailed

# what a trainer checkpoint holds beside the adapter: resume state, pickled (never stored)
TRAINER_STATE = {"trainer_state.json", "manifest.json"}


def adapter_files(folder: str | Path) -> list[Path]:
    """The files of an adapter folder or trainer checkpoint that make up the adapter: its
    weights, config and tokenizer files; not the optimizer, scheduler, RNG or trainer state
    (pickles the store refuses, and nothing a served adapter needs)."""
    from harness.registry.store import PICKLE_SUFFIXES

    return sorted(f for f in Path(folder).iterdir() if f.is_file() and f.name not in TRAINER_STATE
                  and f.suffix.lstrip(".").lower() not in PICKLE_SUFFIXES)


def data_checks(ctx: RunContext) -> DataCheckResult:
    from harness.data import check_data, data_hash

    dc = ctx.cfg.data_checks
    files = {}
    for key in ("train_data", "validation_data"):
        path = getattr(ctx.train_cfg, key, None)
        if not path:
            continue
        report = None
        if dc.enabled:
            report = check_data(path, suites=ctx.cfg.suites, schema=dc.schema_path, data_format=ctx.train_cfg.data_format)
            report.render(ctx.con)  # stderr: stdout stays for --json
        h = data_hash(path)
        if report is not None:
            rows = report.summary["records"]
        else:
            from harness.data import read_records

            rows = len(read_records(path, data_format=ctx.train_cfg.data_format))
        ctx.reg.register_dataset(str(path), h, rows, report=report.to_dict() if report else None)
        blocking = [f["message"] for f in (report.blocking if report else [])]
        files[key] = DataChecked(str(path), h, rows, blocking, report.to_dict() if report else None)
        if blocking and dc.block and not dc.override_reason:
            raise RunFailed(f"data checks block the run ({len(blocking)} blocking findings in {path}: {blocking[0]}); "
                            "fix the data or set data_checks.override_reason")
    ctx.reg.update_run(ctx.run_id, dataset_hash=files["train_data"].hash if "train_data" in files else None)
    return DataCheckResult(override_reason=dc.override_reason or None, **files)


def train(ctx: RunContext) -> TrainResult:
    from harness.train import train as train_method

    ctx.stop_server()
    out = Path(ctx.train_cfg.output_dir)
    resume = out.exists() and any(out.glob("checkpoint-*"))
    result = train_method(ctx.train_cfg, resume=resume)
    return TrainResult(output_dir=str(result.output_dir), checkpoints=[str(c) for c in result.checkpoints],
                       manifest=result.manifest, method=result.method)


def smoke_test(ctx: RunContext) -> SmokeResult:
    # train() ran it on the saved adapter, loaded as the evals load it, and fails on an adapter
    # without effect: its numbers are in the manifest, so the base is not loaded again for it
    report = ctx.records.get("train").manifest["smoke_test"]
    ctx.say(f"adapter changes the model: {report}")
    return SmokeResult(report=report)


def _store(ctx: RunContext, folder: str | Path, from_checkpoint: str | None = None) -> StoredAdapter:
    """Store an adapter's files; the training manifest (wall time, losses) stays in the
    registry's run record, so the adapter's identity is its weights and config alone."""
    with tempfile.TemporaryDirectory(dir=ctx.state.folder) as tmp:
        for f in adapter_files(folder):
            shutil.copy2(f, Path(tmp) / f.name)
        h = ctx.reg.add_adapter(tmp, method=ctx.records.get("train").method, base_fingerprint=ctx.base_fingerprint(),
                                run_id=ctx.run_id)
    return StoredAdapter(adapter_hash=h, path=str(ctx.reg.adapter_path(h)), from_checkpoint=from_checkpoint)


def store_adapter(ctx: RunContext) -> StoredAdapter:
    stored = _store(ctx, ctx.records.get("train").output_dir)
    ctx.reg.update_run(ctx.run_id, adapter_hash=stored.adapter_hash, train_manifest=ctx.records.get("train").manifest)
    ctx.say(f"adapter stored: {stored.adapter_hash[:16]} at {stored.path}")
    return stored


def select_checkpoint(ctx: RunContext) -> SelectionResult:
    """Keep the best checkpoint, judged on cases the gate never scores: the validation loss
    at each checkpoint, or a fixed split of a suite that the gate then leaves out."""
    sel = ctx.cfg.checkpoint_selection
    ckpts = ctx.records.get("train").checkpoints
    final = ctx.records.get("store_adapter").path
    if not sel.enabled or len(ckpts) < 2:
        return SelectionResult(why="checkpoint selection disabled" if not sel.enabled else "one checkpoint")
    if sel.on == "validation":
        return _select_on_validation(ctx, ckpts, final)
    from harness.evals import evaluate_suite, load_suites
    from harness.evals.runner import selection_split

    suite = next((s for s in load_suites(ctx.cfg.suites) if s.name == sel.suite), None)
    if suite is None:
        raise RunFailed(f"checkpoint_selection.suite {sel.suite!r} is not one of the run's suites")
    suite.cases = selection_split(suite, sel.max_cases)
    scores = {}
    for path in ckpts + [final]:
        be, _ = ctx.candidate_backend(path)
        r = evaluate_suite(be, suite, latency_n=0, invariance_n=0)
        scores[path] = r.metrics[f"{suite.name}/{sel.metric}"]["value"]
        ctx.say(f"  {Path(path).name}: {sel.metric} = {scores[path]:.3f}")
        be.set_adapter(None)
    best = max(scores, key=lambda p: (scores[p], p == final))
    why = (f"best {sel.suite}/{sel.metric} on a selection split of {len(suite.cases)} {sel.suite} cases: "
           f"{scores[best]:.3f}; the gate leaves those cases out")
    return _keep(ctx, best, final, SelectionResult(selected=best, why=why, scores=scores, on="suite",
                                                   excluded={sel.suite: [c.id for c in suite.cases]}))


def _select_on_validation(ctx: RunContext, ckpts: list[str], final: str) -> SelectionResult:
    manifest = ctx.records.get("train").manifest
    losses = {h["step"]: h["eval_loss"] for h in manifest["loss_history"] if "eval_loss" in h}
    steps = {p: int(Path(p).name.rsplit("-", 1)[1]) for p in ckpts}
    last = manifest["steps"]
    scores = {p: losses[steps[p]] for p in ckpts if steps[p] in losses and steps[p] != last}
    if last in losses:
        scores[final] = losses[last]
    if not scores:
        return SelectionResult(why="no validation loss was logged at the checkpoints", on="validation")
    best = min(scores, key=lambda p: (scores[p], p != final))
    n = manifest.get("data_records", {}).get("validation")
    why = f"lowest validation loss ({n} records of train.validation_data, never gate cases): {scores[best]:.4f}"
    return _keep(ctx, best, final, SelectionResult(selected=best, why=why, scores=scores, on="validation"))


def _keep(ctx: RunContext, best: str, final: str, out: SelectionResult) -> SelectionResult:
    import dataclasses

    if best != final:
        stored = _store(ctx, best, from_checkpoint=best)
        ctx.reg.update_run(ctx.run_id, adapter_hash=stored.adapter_hash)
        out = dataclasses.replace(out, stored=stored)
    ctx.say(f"selected {'the final adapter' if best == final else Path(best).name}: {out.why}")
    return out

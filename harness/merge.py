"""`harness export CHANNEL --format merged --out DIR`: the channel's adapter merged into its base
(safetensors), written only after a merge-fidelity check.

Merging folds the adapter's update into the base weights once, so every product is rounded
differently from base + adapter; on most cases nothing changes, on a few a near-tie flips and the
answer differs from the one the gate passed. The check measures that on the gate's own cases
(the channel's run's suites, sampled as its run sampled them, or to `max_cases`): the merged model
and base + adapter, in the dtype the gate's evaluation ran in, the token-identical rate of their
outputs, how many multiple-choice answers agree, and each rate metric's delta. It is recorded in
the registry (`harness show RUN`, the run's report). The export is refused, and nothing written,
when fewer than `min_identical` of the outputs are token-identical, when any multiple-choice
answer differs (a choice is one decision: it either survives the merge or the gate's number
moves), or when a rate metric moved by more than `max_delta`.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from harness.errors import HarnessError

MIN_IDENTICAL = 0.98
MAX_DELTA = 0.02
MERGEABLE = ("lora", "dpo", "lokr", "ia3")  # qlora merges into a 4-bit base (dequantised): not the model it was gated as


class ExportRefused(HarnessError):
    """The merged model does not reproduce base + adapter closely enough (exit 1, as a failed gate)."""

    exit_code = 1


def _merge_into(be, out: Path) -> None:
    """The backend's base + adapter, as it was just evaluated, merged and saved to `out` (the
    backend is spent: its model is now the merged one)."""
    merged = be.model.merge_and_unload()
    merged.save_pretrained(out, safe_serialization=True)
    be.tokenizer.save_pretrained(out)


def fidelity(base_results: dict, merged_results: dict, min_identical: float, max_delta: float) -> dict:
    """How closely the merged model's results reproduce base + adapter's, suite by suite."""
    generated = identical = choices = agree = 0
    deltas = {}
    for name, a in base_results.items():
        b = {o["case_id"]: o for o in merged_results[name].outputs}
        for o in a.outputs:
            m = b[o["case_id"]]
            if o["output"] is not None:
                generated += 1
                identical += o["output"] == m["output"]
            for metric, lps in (o.get("logliks") or {}).items():
                choices += 1
                other = m["logliks"][metric]
                agree += max(range(len(lps)), key=lps.__getitem__) == max(range(len(other)), key=other.__getitem__)
        for k, ma in a.metrics.items():
            mb = merged_results[name].metrics.get(k)
            if ma["kind"] == "rate" and mb and ma.get("value") is not None and mb.get("value") is not None:
                deltas[k] = round(mb["value"] - ma["value"], 6)
    rate = identical / generated if generated else 1.0
    passed = rate >= min_identical and choices == agree and all(abs(d) <= max_delta for d in deltas.values())
    return {"generated": generated, "identical": identical, "identical_rate": round(rate, 4), "choices": choices,
            "choices_agree": agree, "deltas": deltas, "min_identical": min_identical, "max_delta": max_delta,
            "passed": passed}


def export_merged(reg, channel: str, out: str | Path, *, min_identical: float = MIN_IDENTICAL, max_delta: float = MAX_DELTA,
                  max_cases: int | None = None, say=None) -> dict:
    """Merge the channel's adapter into its base, check fidelity, record it; write `out` only if it
    passed. Returns the export's registry row; raises ExportRefused (recorded too) otherwise."""
    from harness.evals import run_eval
    from harness.models import HFBackend, resolve

    if say is None:
        from harness.console import console

        say = console().print  # stderr: stdout stays for --json
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise HarnessError(f"{out}: the folder exists and is not empty: give a new --out folder")
    row = next((r for r in reg.status() if r["channel"] == channel), None)
    if row is None:
        reg.export(channel, fmt="path")  # the registry's own error: which channels there are
    method = row["adapter"]["method"]
    if method not in MERGEABLE:
        raise HarnessError(f"channel {channel!r} serves a {method} adapter, which does not merge into its base as it was "
                           f"gated: export --format vllm or path instead")
    adapter = Path(reg.export(channel, fmt="path"))  # verified against its manifest
    run = reg.get_run(row["run_id"]) or {}
    cfg = run.get("config") or {}
    suites = cfg.get("suites") or []
    if not suites:
        raise HarnessError(f"channel {channel!r}: its run {row['run_id']} records no suites to check the merge on")
    dtype = reg.gated_dtype(row["run_id"]) or "float32"
    cases = max_cases or (cfg.get("eval") or {}).get("max_cases")
    base_path = resolve(row["base_model"]["spec"]).path
    with tempfile.TemporaryDirectory(prefix=".merge-", dir=out.parent if out.parent.exists() else None) as tmp:
        merged_dir = Path(tmp) / "model"
        say(f"fidelity check on {len(suites)} suite(s)" + (f", {cases} cases each" if cases else ", every case")
            + f": base + adapter {row['adapter']['hash'][:12]}, then merged ({dtype})")
        kw = {"max_cases": cases, "latency_n": 0, "invariance_n": 0, "dtype": dtype}
        be = HFBackend.from_spec(str(base_path), dtype=dtype)  # loaded once: evaluated with the adapter, then merged
        with_adapter, _ = run_eval(suites, str(base_path), adapter=adapter, out=Path(tmp) / "adapter", backend=be, **kw)
        _merge_into(be, merged_dir)
        del be
        merged, _ = run_eval(suites, str(merged_dir), out=Path(tmp) / "merged", **kw)  # the saved folder, as users load it
        f = fidelity(with_adapter, merged, min_identical, max_delta)
        if f["passed"]:
            out.parent.mkdir(parents=True, exist_ok=True)
            if out.exists():
                out.rmdir()
            shutil.move(str(merged_dir), out)
    entry = reg.record_export(channel=channel, run_id=row["run_id"], adapter_hash=row["adapter"]["hash"], fmt="merged",
                              path=str(out.resolve()) if f["passed"] else None, fidelity=f, passed=f["passed"])
    if run.get("report_path"):
        from harness.report import write_run_report

        write_run_report(row["run_id"], registry=reg)  # the page shows the export and its check
    if not f["passed"]:
        from harness.registry.render import fidelity_text

        raise ExportRefused(f"merged export of {channel!r} refused, nothing written: {fidelity_text(f)}")
    return entry

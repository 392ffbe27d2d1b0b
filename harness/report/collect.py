"""Gather what was recorded about one run: registry rows, the run folder (`state.json`,
`decision.json`, `comparison.json`) and the baseline/candidate results files.

Nothing is re-run. A piece that cannot be read becomes a note on the page rather than an error,
so a partial run (failed at training, say) still gets a report of what it did record.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError
from harness.paths import runs_root, run_folder
from harness.pipeline.records import Records


@dataclass
class RunData:
    """Everything the run report is drawn from."""

    run_id: str
    run: dict
    adapter: dict | None = None
    dataset: dict | None = None
    base_model: dict | None = None
    evals: list[dict] = field(default_factory=list)
    gate: dict | None = None  # the latest gate row
    decision: dict | None = None
    comparison: dict | None = None
    comparison_source: str = ""
    records: Records = field(default_factory=Records)  # state.json: the records of the run's finished stages
    folder: Path | None = None
    baseline: dict = field(default_factory=dict)  # suite -> SuiteResult
    candidate: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)  # suite -> case id -> {"input", "expected"}
    active_on: list[str] = field(default_factory=list)
    exports: list[dict] = field(default_factory=list)  # merged exports of the run's adapter (fidelity checks)
    registry_path: str = ""
    notes: list[str] = field(default_factory=list)  # what could not be read, shown on the page
    sources: list[str] = field(default_factory=list)  # files the page was rendered from


def _read_json(path: Path, data: RunData, what: str):
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        data.notes.append(f"{what} {path} could not be read ({type(e).__name__}: {e})")
        return None
    data.sources.append(str(path))
    return value


def _results_paths(data: RunData, role: str) -> list[Path]:
    """Per-suite folders recorded in the registry for this role, else the run folder's."""
    rows = [e for e in data.evals if e["role"] == role and e.get("results_path")]
    latest: dict[str, dict] = {}
    for e in rows:
        latest[e["suite"]] = e  # a later record of a suite wins
    if latest:
        return [Path(e["results_path"]) for e in latest.values()]
    rec = data.records.get(role)
    return [Path(rec.results)] if rec and rec.results else []


def _load_role(data: RunData, role: str) -> dict:
    from harness.evals.results import load_results

    out: dict = {}
    recorded = {e["suite"]: e.get("results_hash") for e in data.evals if e["role"] == role}
    for path in _results_paths(data, role):
        try:
            found = load_results(path)
        except HarnessError as e:
            data.notes.append(f"{role} results: {e}")
            continue
        for name, r in found.items():
            want = recorded.get(name)
            if want and r.path is not None:
                have = hashlib.sha256((r.path / "results.jsonl").read_bytes()).hexdigest()
                if have != want:
                    data.notes.append(f"{role} results of {name} in {r.path} changed since they were recorded "
                                      f"(results.jsonl sha256 {have[:12]}, registry {want[:12]})")
            out[name] = r
            data.sources.append(str(r.path))
    return out


def _suite_inputs(data: RunData) -> dict:
    """Case inputs from the run's suite folders, only where the suite is unchanged (same hash)."""
    paths = (data.run.get("config") or {}).get("suites") or []
    if not paths or not data.candidate:
        return {}
    try:
        from harness.evals.api import load_suites

        suites = load_suites(paths)
    except (HarnessError, OSError, ValueError):
        return {}
    out = {}
    for s in suites:
        r = data.candidate.get(s.name)
        if r is not None and r.suite_hash == s.hash:
            out[s.name] = {c.id: {"input": c.input, "expected": c.expected} for c in s.cases}
    return out


def _comparison(data: RunData) -> None:
    gate = data.records.get("gate")
    for path in ([Path(gate.comparison)] if gate and gate.comparison else []) + \
            ([data.folder / "comparison.json"] if data.folder else []):
        found = _read_json(path, data, "comparison")
        if found is not None:
            data.comparison, data.comparison_source = found, str(path)
            return
    if data.baseline and data.candidate:
        # an older run without comparison.json: the same paired comparison, from the results files
        from harness.gates import compare

        base = {k: v for k, v in data.baseline.items() if k in data.candidate}
        try:
            data.comparison = compare(base, data.candidate).to_dict()
            data.comparison_source = "computed from the results files"
        except HarnessError as e:
            data.notes.append(f"comparison: {e}")


def collect_run(run_id: str, registry, run_dir: str | Path | None = None) -> RunData:
    """Read every record of `run_id`; raises `NotFound` when the registry has no such run."""
    shown = registry.show(run_id)
    run = shown["run"]
    data = RunData(run_id=run_id, run=run, adapter=shown["adapter"], dataset=shown["dataset"], evals=shown["evals"],
                   active_on=shown["active_on"], exports=shown.get("exports") or [], registry_path=str(registry.path))
    data.sources.append(f"{registry.path} (registry)")
    if run.get("base_fingerprint"):
        data.base_model = registry.get_base_model(run["base_fingerprint"])
    gates = shown["gates"]
    data.gate = gates[-1] if gates else None
    data.folder = run_folder(run_id, registry.path, run_dir)
    if data.folder:
        state = _read_json(data.folder / "state.json", data, "run state")
        data.records = Records.load((state or {}).get("done"))
    else:
        data.notes.append(f"no run folder with state.json for {run_id} under {runs_root()}: "
                          "training and data-check sections are empty")
    if data.gate:
        data.decision = data.gate["decision"]
    elif data.folder:
        gate = data.records.get("gate")
        path = Path(gate.decision if gate and gate.decision else data.folder / "decision.json")
        data.decision = _read_json(path, data, "gate decision")
    data.baseline = _load_role(data, "baseline")
    data.candidate = _load_role(data, "candidate")
    _comparison(data)
    data.inputs = _suite_inputs(data)
    return data

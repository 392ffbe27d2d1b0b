"""Results files: per suite a folder with `outputs.jsonl` (one row per case: the chat the
model saw, what it said, what the case expected), `results.jsonl` (one row per case x check)
and `summary.json` (metrics overall and per slice with n and 95 % intervals, latency percentiles). Generation is kept apart from scoring, so
saved outputs can be re-scored."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError
from harness.evals.stats import summarize


@dataclass
class SuiteResult:
    suite: str
    suite_hash: str
    suite_version: str
    model: str
    model_fingerprint: str
    adapter_hash: str | None
    arm: str
    generation: dict
    outputs: list[dict]
    rows: list[dict]
    summary: dict = field(default_factory=dict)
    path: Path | None = None
    identity: dict = field(default_factory=dict)  # engine, dtype, device, library versions that computed the outputs

    @property
    def metrics(self) -> dict:
        return self.summary.get("metrics", {})

    def errors(self) -> dict[str, set[str]]:
        """metric name -> ids of the cases whose check raised (an error is not a model failure:
        those cases are left out of the metric and of the pass rate, and counted here)."""
        out: dict[str, set[str]] = {}
        for r in self.rows:
            if r.get("error"):
                out.setdefault(f"{self.suite}/{r['metric']}", set()).add(r["case_id"])
                out.setdefault(f"{self.suite}/pass_rate", set()).add(r["case_id"])
        return out

    def case_values(self) -> dict[str, dict[str, float]]:
        """metric name -> {case id: value}: the paired data the gates compare (errored cases left out)."""
        out: dict[str, dict[str, float]] = {}
        errored = {r["case_id"] for r in self.rows if r.get("error")}
        for r in self.rows:
            base = f"{self.suite}/{r['metric']}"
            if r.get("error"):
                out.setdefault(base, {})
                continue
            out.setdefault(base, {})[r["case_id"]] = 1.0 if r["passed"] else 0.0
            for f, ok in (r.get("fields") or {}).items():
                out.setdefault(f"{base}.{f}", {})[r["case_id"]] = 1.0 if ok else 0.0
        by_case: dict[str, bool] = {}
        for r in self.rows:
            if r["case_id"] not in errored:
                by_case[r["case_id"]] = by_case.get(r["case_id"], True) and r["passed"]
        out[f"{self.suite}/pass_rate"] = {k: 1.0 if v else 0.0 for k, v in by_case.items()}
        generated = [o for o in self.outputs if o.get("output") is not None]
        if generated:
            out[f"{self.suite}/completion_tokens"] = {o["case_id"]: float(o["completion_tokens"]) for o in generated}
            out[f"{self.suite}/prompt_tokens"] = {o["case_id"]: float(o["prompt_tokens"]) for o in generated}
        lat = self.summary.get("latency", {}).get("samples", [])
        if lat:
            out[f"{self.suite}/latency_s"] = {s["case_id"]: s["latency_s"] for s in lat}
        return out

    def case_slices(self) -> dict[str, dict]:
        return {o["case_id"]: o.get("slices", {}) for o in self.outputs}


# What computed results written before identities were recorded: transformers' generate() in
# fp32 on the CPU was the only path then.
LEGACY_IDENTITY = {"engine": "transformers-generate", "dtype": "float32", "device": "cpu"}


IDENTITY_KEYS = ("engine", "dtype", "device", "torch", "transformers", "peft")  # peft: adapter results only


def identity_differences(a: dict | None, b: dict | None) -> list[str]:
    """The identity keys on which two results differ (a key missing on either side is not
    compared: results written before it was recorded)."""
    a, b = a or LEGACY_IDENTITY, b or LEGACY_IDENTITY
    return [k for k in IDENTITY_KEYS if a.get(k) and b.get(k) and a[k] != b[k]]


def without_cases(result: SuiteResult, ids) -> SuiteResult:
    """A copy of `result` without the given cases (rows, outputs, summary rebuilt)."""
    import copy

    drop = set(ids)
    r = copy.copy(result)
    r.outputs = [o for o in result.outputs if o["case_id"] not in drop]
    r.rows = [x for x in result.rows if x["case_id"] not in drop]
    lat = dict(result.summary.get("latency") or {})
    if lat.get("samples"):
        lat["samples"] = [x for x in lat["samples"] if x["case_id"] not in drop]
    slice_fields = sorted({f for o in result.outputs for f in (o.get("slices") or {})})
    r.summary = {**result.summary, **build_summary(r, slice_fields, lat if lat.get("samples") else None)}
    return r


def metric_kind(name: str) -> str:
    leaf = name.split("/", 1)[-1]
    if leaf in ("completion_tokens", "prompt_tokens"):
        return "mean"
    if leaf.startswith("latency"):
        return "latency"
    return "rate"


def build_summary(result: SuiteResult, slice_fields: list[str], latency: dict | None = None) -> dict:
    values = result.case_values()
    slices = result.case_slices()
    errors = result.errors()
    metrics, by_slice = {}, {}
    for name, per_case in values.items():
        kind = metric_kind(name)
        if kind == "latency":
            continue
        metrics[name] = summarize(list(per_case.values()), kind)
        if errors.get(name):
            metrics[name]["errors"] = len(errors[name])
        groups: dict[str, list[float]] = {}
        for case_id, v in per_case.items():
            for f in slice_fields:
                if f in slices.get(case_id, {}):
                    groups.setdefault(f"{f}={slices[case_id][f]}", []).append(v)
        by_slice[name] = {k: summarize(vs, kind) for k, vs in sorted(groups.items())}
    if latency and latency.get("samples"):
        for q in ("p50", "p95", "p99"):
            metrics[f"{result.suite}/latency_{q}"] = {"value": latency[q], "n": len(latency["samples"]), "ci": None, "kind": "latency"}
    return {
        "suite": result.suite,
        "suite_hash": result.suite_hash,
        "suite_version": result.suite_version,
        "model": result.model,
        "model_fingerprint": result.model_fingerprint,
        "adapter_hash": result.adapter_hash,
        "arm": result.arm,
        "generation": result.generation,
        "identity": result.identity or dict(LEGACY_IDENTITY),
        "n_cases": len(result.outputs),
        "metrics": metrics,
        "slices": by_slice,
        "latency": latency or {},
    }


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Rows as JSON lines, written atomically (a temporary file, then a rename)."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def write_result(result: SuiteResult, out_dir: str | Path) -> Path:
    """Write one suite's files under out_dir/<suite>/ (each file replaced atomically)."""
    folder = Path(out_dir) / result.suite
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "outputs.jsonl", result.outputs)
    write_jsonl(folder / "results.jsonl", result.rows)
    summary = dict(result.summary)
    summary["results_sha256"] = hashlib.sha256((folder / "results.jsonl").read_bytes()).hexdigest()
    tmp = folder / "summary.tmp"
    tmp.write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    os.replace(tmp, folder / "summary.json")
    result.summary, result.path = summary, folder
    return folder


def _read_jsonl(path: Path) -> list[dict]:
    # "\n" only: str.splitlines() would also split at U+2028/U+2029/U+0085 inside a model's output
    return [json.loads(l) for l in path.read_text(encoding="utf-8").split("\n") if l.strip()]


def read_suite_result(folder: Path) -> SuiteResult:
    try:
        s = json.loads((folder / "summary.json").read_text())
        return SuiteResult(
            suite=s["suite"], suite_hash=s["suite_hash"], suite_version=str(s["suite_version"]), model=s["model"],
            model_fingerprint=s["model_fingerprint"], adapter_hash=s.get("adapter_hash"), arm=s.get("arm", ""),
            generation=s["generation"], outputs=_read_jsonl(folder / "outputs.jsonl"),
            rows=_read_jsonl(folder / "results.jsonl"), summary=s, path=folder,
            identity=s.get("identity") or dict(LEGACY_IDENTITY),
        )
    except (OSError, ValueError, KeyError) as e:
        raise HarnessError(f"{folder}: not a readable results folder ({type(e).__name__}: {e}): run `harness eval` to make one") from None


def load_results(path: str | Path) -> dict[str, SuiteResult]:
    """Results of one suite folder, or of every suite folder below a results folder."""
    p = Path(path)
    if (p / "summary.json").is_file():
        r = read_suite_result(p)
        return {r.suite: r}
    if p.is_dir():
        found = {r.suite: r for r in (read_suite_result(d) for d in sorted(p.iterdir()) if (d / "summary.json").is_file())}
        if found:
            return found
    raise HarnessError(f"{p}: no results here (expected summary.json, or suite folders that hold one)")

"""The channel history page's data: every move of a channel (promotions and rollbacks), the
headline metrics of the adapter it served after each move, and what it serves now."""

from __future__ import annotations

from pathlib import Path

from harness.evals.results import metric_kind
from harness.report import charts

MAX_CHARTS = 12


def _headline_names(per_entry: list[dict]) -> list[str]:
    """Metrics shown over time: each suite's checks and pass rate (not per-field parts), then p50 latency."""
    seen: dict[str, None] = {}
    for m in per_entry:
        for k in m:
            leaf = k.split("/", 1)[-1]
            if "." not in leaf and leaf not in ("latency_p95", "latency_p99"):
                seen[k] = None
    return sorted(seen, key=lambda k: (metric_kind(k) != "rate", k.split("/", 1)[-1] != "pass_rate", k))


def channel_data(channel: str, registry, out_dir: Path) -> dict:
    from harness.registry import headline

    history = registry.history(channel)
    status = next((s for s in registry.status() if s["channel"] == channel), None)
    run_cache: dict[str, dict] = {}

    def run_info(run_id: str | None) -> dict:
        if not run_id:
            return {"metrics": {}, "gate": None, "name": "", "report": None}
        if run_id not in run_cache:
            metrics: dict = {}
            for e in registry.evals(run_id, role="candidate"):
                metrics.update(headline(e["metrics"]))
            gate = registry.latest_gate(run_id)
            run = registry.get_run(run_id) or {}
            report = run_id + ".html" if (out_dir / f"{run_id}.html").is_file() else None
            run_cache[run_id] = {"metrics": metrics, "gate": gate["passed"] if gate else None, "name": run.get("name") or "",
                                 "report": report}
        return run_cache[run_id]

    by_id = {h["id"]: h for h in history}
    entries = []
    for h in history:
        info = run_info(h["run_id"])
        restored = by_id.get(h["restored_id"]) if h.get("restored_id") else None
        entries.append({
            "seq": h["seq"], "when": h["created"], "action": h["action"], "forced": h["forced"], "adapter": h["adapter_hash"],
            "from_adapter": h.get("from_adapter_hash") or "", "run_id": h["run_id"] or "", "run_name": info["name"],
            "actor": h["actor"] or "", "reason": h["reason"] or "", "gate": info["gate"], "metrics": info["metrics"],
            "report": info["report"], "restored_seq": restored["seq"] if restored else None, "current": False,
        })
    if entries:
        entries[-1]["current"] = True
    names = _headline_names([e["metrics"] for e in entries])
    table_cols = [n for n in names if n.split("/", 1)[-1] in ("pass_rate", "latency_p50")] or names[:6]
    graphs = []
    for name in names[:MAX_CHARTS]:
        pts = [(e["seq"], e["metrics"][name]) for e in entries if name in e["metrics"]]
        if not pts:
            continue
        marks = [{"x": e["seq"], "label": f"rollback #{e['seq']}", "tone": "rollback"} for e in entries if e["action"] == "rollback"]
        rate = metric_kind(name) == "rate"
        graphs.append({"metric": name, "chart": charts.lines(
            [{"name": name, "tone": "a", "points": pts, "dots": True}], marks=marks, x_label="move #",
            y_range=(0.0, 1.0) if rate else None, width=370, height=190)})
    return {
        "channel": channel, "entries": entries, "columns": table_cols, "graphs": graphs,
        "promotions": sum(e["action"] == "promote" for e in entries),
        "rollbacks": sum(e["action"] == "rollback" for e in entries),
        "status": status, "registry": str(registry.path),
    }

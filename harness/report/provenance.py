"""The run report's provenance sections: how the candidate was trained (loss curves, checkpoints,
the chosen one, the smoke test) and what the data checks found in its training data."""

from __future__ import annotations

import json
import re
from pathlib import Path

from harness.report import charts
from harness.report.collect import RunData

MAX_FINDINGS = 30  # data-check findings shown per file; the rest are counted


# ---- training ----------------------------------------------------------------------------
def _step_of(path: str | None, final_step) -> int | None:
    if not path:
        return None
    m = re.search(r"checkpoint-(\d+)", Path(str(path)).name)
    return int(m.group(1)) if m else final_step


def training(d: RunData) -> dict | None:
    t = d.records.get("train")
    if not t:
        return None
    man = t.manifest or {}
    hist = man.get("loss_history") or []
    train_pts = [(h["step"], h["loss"]) for h in hist if "loss" in h and h.get("step") is not None]
    val_pts = [(h["step"], h["eval_loss"]) for h in hist if "eval_loss" in h and h.get("step") is not None]
    final_step = man.get("steps")
    ckpts = [{"name": Path(c).name, "step": _step_of(c, None)} for c in t.checkpoints or []]
    sel = d.records.get("select_checkpoint")
    selected = sel.selected if sel else None
    stored = d.records.get("store_adapter")
    store = stored.path if stored else None
    if not selected or selected == "final" or selected == store:
        chosen = {"name": "final adapter", "step": final_step}
    else:
        chosen = {"name": Path(selected).name, "step": _step_of(selected, final_step)}
    marks = [{"x": c["step"], "label": c["name"], "tone": "ckpt"} for c in ckpts if c["step"] is not None and c["step"] != chosen["step"]]
    if chosen["step"] is not None:
        marks.append({"x": chosen["step"], "label": f"chosen: {chosen['name']}", "tone": "chosen"})
    series = [{"name": "train loss", "tone": "a", "points": train_pts},
              {"name": "validation loss", "tone": "b", "points": val_pts, "dots": True}]
    scores = [{"name": "final adapter" if p == store else Path(p).name, "score": s, "chosen": p == selected}
              for p, s in ((sel.scores if sel else None) or {}).items()]
    fm = man.get("final_metrics") or {}
    info = [(k, v) for k, v in (
        ("method", man.get("method") or t.method), ("family", man.get("family")), ("steps", final_step),
        ("epochs", man.get("epochs")), ("trainable parameters", man.get("trainable_parameters")),
        ("train time (s)", man.get("train_time_s")), ("seed", man.get("seed")), ("device", man.get("device")),
        ("resumed from", man.get("resumed_from")), ("data records", man.get("data_records")),
        ("final train loss", fm.get("train_loss", train_pts[-1][1] if train_pts else None)),
        ("final validation loss", fm.get("eval_loss", val_pts[-1][1] if val_pts else None)),
        ("artifact hash", man.get("artifact_hash")),
    ) if v not in (None, "", {})]
    return {"chart": charts.lines(series, marks=marks, y_label="loss"), "info": info, "chosen": chosen,
            "why": (sel.why if sel else "") or "", "scores": scores, "checkpoints": ckpts,
            "n_train": len(train_pts), "n_val": len(val_pts),
            "smoke": man.get("smoke_test") or (d.records.get("smoke_test").report if "smoke_test" in d.records else None),
            "libraries": sorted((man.get("library_versions") or {}).items())}


# ---- data report -------------------------------------------------------------------------
def _summary_rows(summary: dict) -> list[tuple[str, str]]:
    try:
        from harness.data.report import summary_rows

        return summary_rows(summary)
    except Exception:  # an older or partial summary: show its fields as they are
        return [(k, json.dumps(v, default=str) if isinstance(v, (dict, list)) else str(v)) for k, v in summary.items()]


def data_report(d: RunData) -> dict | None:
    dc = d.records.get("data_checks")
    files = []
    for key, label in (("train_data", "training data"), ("validation_data", "validation data")):
        entry = getattr(dc, key) if dc else None
        if entry is not None:
            files.append((label, entry.path, entry.hash, entry.rows, entry.report))
    if not files and d.dataset:
        ds = d.dataset
        files.append(("training data", ds.get("path"), ds.get("content_hash"), ds.get("rows"), ds.get("report")))
    if not files:
        return None
    out = []
    order = {"error": 0, "warning": 1, "info": 2}
    for label, path, h, rows, report in files:
        report = report or {}
        findings = sorted(report.get("findings") or [], key=lambda f: order.get(f.get("severity"), 3))
        out.append({
            "label": label, "path": path or report.get("path") or "", "hash": h or report.get("data_hash") or "",
            "rows": rows, "format": report.get("format") or "", "checked": bool(report),
            "ok": report.get("ok"), "blocking": report.get("blocking") or 0, "counts": report.get("counts") or {},
            "summary": _summary_rows(report["summary"]) if report.get("summary") else [],
            "findings": [{"severity": f.get("severity", ""), "check": f.get("check", ""), "message": f.get("message", ""),
                          "locations": (f.get("locations") or [])[:4], "more": max(len(f.get("locations") or []) - 4, 0)}
                         for f in findings[:MAX_FINDINGS]],
            "more_findings": max(len(findings) - MAX_FINDINGS, 0),
        })
    return {"files": out, "override_reason": (dc.override_reason if dc else None) or ""}


def exports(d: RunData) -> list[dict]:
    """The merged exports of the run's adapter, with their fidelity checks."""
    rows = []
    for x in d.exports:
        f = x.get("fidelity") or {}
        worst = max((f.get("deltas") or {}).items(), key=lambda kv: abs(kv[1]), default=None)
        rows.append({"id": x["id"], "format": x["format"], "channel": x["channel"], "passed": x["passed"], "path": x.get("path"),
                     "identical": f.get("identical"), "generated": f.get("generated"), "rate": f.get("identical_rate"),
                     "min_identical": f.get("min_identical"), "choices": f.get("choices"), "choices_agree": f.get("choices_agree"),
                     "worst": worst, "max_delta": f.get("max_delta")})
    return rows

"""The run report's sections as plain data for the templates: header, gate and plan, metrics,
slices, latency and tokens, flipped examples (training and data checks: `provenance`). Each
function takes the collected `RunData` and returns dicts and lists; the templates only lay them
out (and escape them)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from harness.gates.decision import GUARDED_SUITES
from harness.report import charts
from harness.report.collect import RunData
from harness.report.diff import side_by_side

HARD_GAP = 0.10  # a slice where the base model is this far below its overall score is "hard"
SMALL_N = 10  # slices with fewer cases are shown faded: their deltas are noise
MAX_FLIPS = 300  # flipped cases shown; the rest are counted
MAX_HEAT_COLUMNS = 14
HARD_NAMES = ("hard", "difficult", "adversarial")


def leaf(metric: str) -> str:
    return metric.split("/", 1)[-1]


def suite_of(metric: str) -> str:
    return metric.split("/", 1)[0]


# ---- header ------------------------------------------------------------------------------
def header(d: RunData) -> dict:
    run = d.run
    env = run.get("environment") or {}
    dataset = d.dataset or {}
    adapter = d.adapter or {}
    decision = d.decision or {}
    passed = d.gate["passed"] if d.gate else decision.get("passed")
    promote = d.records.get("promote")
    git = env.get("git") or {}
    return {
        "run_id": d.run_id,
        "name": run.get("name") or "",
        "status": run.get("status") or "",
        "stage": run.get("stage") or "",
        "error": run.get("error") or "",
        "created": run.get("created") or "",
        "finished": run.get("finished") or "",
        "verdict": "passed" if passed is True else "failed" if passed is False else "no gate",
        "policy": decision.get("policy") or "",
        "counts": decision.get("counts") or {},
        "promoted": d.active_on or ([promote.channel] if promote and promote.promoted else []),
        "promote_note": (promote.why if promote else "") or "",
        "base": {"spec": (d.base_model or {}).get("spec") or (run.get("config") or {}).get("base_model") or "",
                 "fingerprint": run.get("base_fingerprint") or ""},
        "adapter": {"hash": run.get("adapter_hash") or "", "method": adapter.get("method") or "",
                    "size": adapter.get("size_bytes"), "files": adapter.get("n_files")},
        "data": {"hash": run.get("dataset_hash") or "", "path": dataset.get("path") or "", "rows": dataset.get("rows")},
        "config_hash": run.get("config_hash") or "",
        "config": json.dumps(run.get("config") or {}, indent=2, sort_keys=True, default=str),
        "seeds": run.get("seeds") or {},
        "environment": [(k, v) for k, v in (
            ("python", env.get("python")), ("platform", env.get("platform")), ("host", env.get("host")),
            ("cpus", env.get("cpus")), ("user", env.get("user")),
            ("git", f"{git.get('commit', '')[:12]}{' (dirty)' if git.get('dirty') else ''}" if git else None),
        ) if v],
        "libraries": [(k, v or "not installed") for k, v in (env.get("libraries") or {}).items()],
        "timings": [(stage, t.get("seconds")) for stage, t in (run.get("timings") or {}).items() if isinstance(t, dict)],
    }


# ---- gate --------------------------------------------------------------------------------
def gate(d: RunData) -> dict | None:
    if not d.decision:
        return None
    rules = [dict(r) for r in d.decision.get("rules") or []]
    rules.sort(key=lambda r: (not r.get("blocking"), r.get("verdict") == "skipped"))
    unproven = [r for r in rules if r.get("verdict") == "insufficient_evidence" and not r.get("blocking")]
    return {"policy": d.decision.get("policy", ""), "passed": d.decision.get("passed"), "rules": rules,
            "counts": d.decision.get("counts") or {}, "blocking": sum(bool(r.get("blocking")) for r in rules),
            "unproven": unproven, "unproven_safety": any(suite_of(r.get("metric", "")) in GUARDED_SUITES for r in unproven),
            "excluded": d.decision.get("excluded") or {}, "sequential": d.decision.get("sequential") or {},
            "ci_label": f"{100 * (d.decision.get('confidence') or 0.95):.3g}%"}


def plan(d: RunData) -> dict | None:
    """The gate plan made before training (plan.json): which rules the run's cases could decide."""
    import json

    rec = d.records.get("plan")
    path = rec.plan if rec else None
    if not path:
        return None
    try:
        p = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        d.notes.append(f"gate plan: {path}: {e}")
        return None
    rows = [{**r, "chances": r.get("summary") or r.get("note", "")} for r in p.get("rules") or []]
    return {"rows": rows, "undecidable": p.get("undecidable") or [], "cannot_fail": p.get("cannot_fail") or [], "power": p.get("power"), "flip_rate": p.get("flip_rate"),
            "z": p.get("z"), "baseline": p.get("baseline"), "sequential": p.get("sequential")}


# ---- metric comparison -------------------------------------------------------------------
def _summary_ci(results: dict, metric: str):
    r = results.get(suite_of(metric))
    m = r.metrics.get(metric) if r is not None else None
    return (m or {}).get("ci")


def _limits(d: RunData) -> dict:
    """(metric, test) -> threshold of the unsliced rules, drawn on the forest plot."""
    out = {}
    for r in (d.decision or {}).get("rules") or []:
        if not r.get("slice") and r.get("test") in ("max_drop", "max_ratio") and r.get("threshold") is not None:
            out[(r["metric"], r["test"])] = r["threshold"]
    return out


def metrics(d: RunData) -> dict:
    cmp = (d.comparison or {}).get("metrics") or {}
    limits = _limits(d)
    rows, rate_rows, ratio_rows = [], [], []
    for name, m in cmp.items():
        ratio = m.get("ratio_ci") is not None
        rows.append({
            "metric": name, "kind": m["kind"], "n": m["n"], "baseline": m["baseline"], "candidate": m["candidate"],
            "baseline_ci": _summary_ci(d.baseline, name), "candidate_ci": _summary_ci(d.candidate, name),
            "delta": m["delta"], "ci": m["ci"], "p_value": m.get("p_value"),
            "ratio": m.get("ratio"), "ratio_ci": m.get("ratio_ci"),
            "improved": len(m.get("improved") or []), "regressed": len(m.get("regressed") or []),
        })
        if m["kind"] == "rate":
            rate_rows.append({"label": name, "value": m["delta"], "lo": m["ci"][0], "hi": m["ci"][1],
                              "limit": -limits[(name, "max_drop")] if (name, "max_drop") in limits else None})
        elif ratio:
            rate = m.get("ratio")
            ratio_rows.append({"label": name, "value": rate, "lo": m["ratio_ci"][0], "hi": m["ratio_ci"][1],
                               "limit": limits.get((name, "max_ratio"))})
    return {"rows": rows, "forest": charts.forest(rate_rows, center=0.0),
            "ratios": charts.forest(ratio_rows, center=1.0, unit="ratio"), "source": d.comparison_source}


# ---- slices ------------------------------------------------------------------------------
def _hard(key: str, base_value: float | None, overall: float | None) -> str:
    if key.split("=", 1)[-1].lower() in HARD_NAMES:
        return f"tagged {key}"
    if base_value is not None and overall is not None and overall - base_value >= HARD_GAP:
        return f"base model {base_value:.2f} here vs {overall:.2f} overall"
    return ""


def slices(d: RunData) -> list[dict]:
    cmp = d.comparison or {}
    overall = cmp.get("metrics") or {}
    by_suite: dict[str, list[str]] = {}
    for metric, per in (cmp.get("slices") or {}).items():
        if per and overall.get(metric, {}).get("kind", "rate") == "rate":
            by_suite.setdefault(suite_of(metric), []).append(metric)
    out = []
    for suite, names in by_suite.items():
        names.sort(key=lambda n: ("." in leaf(n), leaf(n) == "pass_rate", n))
        shown, dropped = names[:MAX_HEAT_COLUMNS], len(names) - MAX_HEAT_COLUMNS
        keys = sorted({k for n in shown for k in cmp["slices"][n]})
        deltas = [abs(cmp["slices"][n][k]["delta"]) for n in shown for k in cmp["slices"][n]]
        scale = max(max(deltas, default=0.0), 0.1)
        ref = f"{suite}/pass_rate" if f"{suite}/pass_rate" in cmp["slices"] else shown[0]
        rows = []
        for k in keys:
            ref_cell = cmp["slices"][ref].get(k)
            hard = _hard(k, ref_cell["baseline"] if ref_cell else None, overall.get(ref, {}).get("baseline"))
            cells = []
            for n in shown:
                c = cmp["slices"][n].get(k)
                if c is None:
                    cells.append(None)
                    continue
                lo, hi = c["ci"]
                cells.append({
                    "delta": c["delta"], "n": c["n"], "bg": charts.heat(c["delta"], scale),
                    "sig": lo > 0 or hi < 0, "small": c["n"] < SMALL_N,
                    "title": f"{leaf(n)} on {k}: {c['baseline']:.3f} -> {c['candidate']:.3f}, "
                             f"delta {c['delta']:+.3f} [{lo:+.3f}, {hi:+.3f}], n={c['n']}",
                })
            n_cases = max((c["n"] for c in cells if c), default=0)
            rows.append({"key": k, "field": k.split("=", 1)[0], "hard": hard, "n": n_cases, "cells": cells})
        out.append({"suite": suite, "columns": [leaf(n) for n in shown], "rows": rows, "dropped": max(dropped, 0),
                    "scale": scale})
    return out


# ---- latency and tokens ------------------------------------------------------------------
def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    i = (len(v) - 1) * q
    lo = int(i)
    return v[lo] + (v[min(lo + 1, len(v) - 1)] - v[lo]) * (i - lo)


def latency(d: RunData) -> list[dict]:
    cmp = (d.comparison or {}).get("metrics") or {}
    out = []
    for suite in [s for s in d.candidate if s in d.baseline]:
        b, c = d.baseline[suite], d.candidate[suite]
        lb, lc = b.summary.get("latency") or {}, c.summary.get("latency") or {}
        groups, table = [], []
        for label, tone, lat in (("baseline", "a", lb), ("candidate", "b", lc)):
            vals = [s["latency_s"] for s in lat.get("samples") or [] if isinstance(s.get("latency_s"), (int, float))]
            groups.append({"label": label, "tone": tone, "values": vals, "p50": lat.get("p50"), "p95": lat.get("p95")})
            table.append({"arm": label, "n": len(vals), "p50": lat.get("p50"), "p95": lat.get("p95"), "p99": lat.get("p99"),
                          "tokens_per_s": lat.get("tokens_per_s")})
        tokens = []
        for label, tone, r in (("baseline", "a", b), ("candidate", "b", c)):
            vals = [float(o["completion_tokens"]) for o in r.outputs if o.get("output") is not None
                    and isinstance(o.get("completion_tokens"), (int, float))]
            prompt = [float(o["prompt_tokens"]) for o in r.outputs if isinstance(o.get("prompt_tokens"), (int, float))]
            tokens.append({"label": label, "tone": tone, "values": vals, "n": len(vals),
                           "mean": statistics.fmean(vals) if vals else None, "p50": _pct(vals, 0.5), "max": max(vals, default=None),
                           "prompt_mean": statistics.fmean(prompt) if prompt else None})
        ratios = [dict(cmp[k], metric=k) for k in (f"{suite}/latency_p50", f"{suite}/latency_p95", f"{suite}/completion_tokens")
                  if k in cmp]
        out.append({"suite": suite, "table": table, "strips": charts.strips(groups), "ratios": ratios,
                    "tokens": tokens, "histogram": charts.histogram(tokens) if any(t["values"] for t in tokens) else None})
    return out


def cost(d: RunData) -> dict | None:
    """Cost side by side: per arm (baseline, candidate, prompted, ...) and suite, the mean prompt
    and completion tokens per call and the latency p50 where timed, and the training time."""
    from harness.registry.registry import COST_METRICS, per_call_cost

    rows = per_call_cost(d.evals)
    if not rows:
        return None
    suites = list(dict.fromkeys(s for by in rows.values() for s in by))
    t = d.records.get("train")
    train_s = (t.manifest or {}).get("train_time_s") if t else None
    return {"suites": suites, "train_s": train_s,
            "rows": [{"arm": arm, "train_s": train_s if arm == "candidate" else None,
                      "by_suite": {s: by.get(s) or dict.fromkeys(COST_METRICS) for s in suites}}
                     for arm, by in rows.items()]}


# ---- flipped examples --------------------------------------------------------------------
def _shown_output(o: dict | None) -> str:
    """What the model said; for log-likelihood cases, the option it ranked first."""
    if o is None:
        return "(no output recorded)"
    if o.get("output") is not None:
        return str(o["output"])
    lls = o.get("logliks") or {}
    parts = []
    for name, vals in lls.items():
        if vals:
            best = max(range(len(vals)), key=lambda i: vals[i])
            parts.append(f"{name}: picks option {best} (log-likelihood {vals[best]:.2f} of "
                         + ", ".join(f"{v:.2f}" for v in vals) + ")")
    return "\n".join(parts) or "(no output recorded)"


def _as_text(v) -> str:
    if isinstance(v, dict) and set(v) == {"text"}:
        return str(v["text"])
    if isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False, indent=1)


def _by_case(result) -> tuple[dict, dict]:
    if result is None:
        return {}, {}
    rows: dict[str, list[dict]] = {}
    for r in result.rows:
        rows.setdefault(r["case_id"], []).append(r)
    return {o["case_id"]: o for o in result.outputs}, rows


def flips(d: RunData) -> dict:
    cmp = (d.comparison or {}).get("metrics") or {}
    cases: dict[tuple[str, str], dict] = {}
    for name, m in cmp.items():
        if m.get("kind") != "rate":
            continue
        for direction, ids in (("improved", m.get("improved") or []), ("regressed", m.get("regressed") or [])):
            for cid in ids:
                c = cases.setdefault((suite_of(name), cid), {"flips": []})
                c["flips"].append({"check": leaf(name), "direction": direction})
    index = {}  # suite -> arm -> (outputs by case, rows by case)
    for suite in {s for s, _ in cases}:
        index[suite] = {arm: _by_case(results.get(suite)) for arm, results in (("b", d.baseline), ("c", d.candidate))}
    cards = []
    for (suite, cid), c in cases.items():
        (b_out, b_rows), (c_out, c_rows) = index[suite]["b"], index[suite]["c"]
        bo, co = b_out.get(cid), c_out.get(cid)
        before = {r["metric"]: r for r in b_rows.get(cid, [])}
        reasons = []
        for r in c_rows.get(cid, []):
            br = before.get(r["metric"])
            if br is None or br["passed"] != r["passed"]:
                reasons.append({"check": r["metric"], "before": br.get("reason") or "" if br else "",
                                "after": r.get("reason") or "", "before_ok": br["passed"] if br else None,
                                "after_ok": r["passed"]})
        overall = next((f["direction"] for f in c["flips"] if f["check"] == "pass_rate"), None)
        dirs = {f["direction"] for f in c["flips"]}
        direction = overall or (dirs.pop() if len(dirs) == 1 else "mixed")
        slices_ = (co or bo or {}).get("slices") or {}
        case = (d.inputs.get(suite) or {}).get(cid)
        checks = sorted({f["check"] for f in c["flips"] if f["check"] != "pass_rate"})
        cards.append({
            "suite": suite, "case_id": cid, "direction": direction, "checks": checks,
            "flips": [f for f in c["flips"] if f["check"] != "pass_rate"],
            "slices": [f"{k}={v}" for k, v in slices_.items()],
            "input": _as_text(case["input"]) if case else None,
            "expected": _as_text(case["expected"]) if case and case["expected"] is not None else None,
            "outputs": (bo, co), "reasons": reasons,
        })
    order = {"regressed": 0, "mixed": 1, "improved": 2}
    cards.sort(key=lambda x: (order.get(x["direction"], 3), x["suite"], x["case_id"]))
    shown = cards[:MAX_FLIPS]
    for card in shown:  # diffs only for what is shown: the expensive part
        bo, co = card.pop("outputs")
        card["diff"] = side_by_side(_shown_output(bo), _shown_output(co))
    return {
        "cards": shown, "total": len(cards), "hidden": len(cards) - len(shown),
        "counts": {k: sum(c["direction"] == k for c in cards) for k in ("regressed", "mixed", "improved")},
        "suites": sorted({c["suite"] for c in shown}),
        "checks": sorted({ch for c in shown for ch in c["checks"]}),
        "slices": sorted({s for c in shown for s in c["slices"]}),
    }

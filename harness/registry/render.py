"""Plain-text views of registry records for the CLI (stdout; `--json` prints the records instead)."""

from __future__ import annotations

import json

from harness.registry.channels import headline


def _short(h: str | None, n: int = 12) -> str:
    return h[:n] if h else "-"


def _metrics(values: dict) -> str:
    return ", ".join(f"{k.split('/', 1)[-1]}={v:.3g}" for k, v in values.items()) or "-"


def status_text(rows: list[dict]) -> str:
    if not rows:
        return "no channels yet: `harness promote RUN --channel production` creates one"
    out = []
    for s in rows:
        base, ad, mv = s["base_model"], s["adapter"], s["last_move"]
        data = s.get("dataset") or {}
        gate = s.get("gate")
        out.append(s["channel"])
        out.append(f"  base     {base['spec'] or '(unregistered)'}  fingerprint {_short(base['fingerprint'])}")
        out.append(f"  adapter  {_short(ad['hash'])}  {ad['method'] or '-'}  {ad['path']}")
        out.append(f"  run      {s['run_id'] or '-'}  config {_short(s.get('config_hash'))}")
        out.append(f"  data     {_short(data.get('hash'))}  {data.get('path') or '-'}  rows {data.get('rows') or '-'}")
        for suite, values in (s.get("evals") or {}).items():
            out.append(f"  eval     {suite}: {_metrics(values)}")
        if not s.get("evals"):
            out.append("  eval     - (no candidate evals recorded)")
        out.append(f"  gate     {('passed' if gate['passed'] else 'FAILED') + ' (#' + str(gate['id']) + ', ' + gate['created'] + ')' if gate else '-'}")
        forced = f", forced: {mv['reason']}" if mv["forced"] else (f": {mv['reason']}" if mv["reason"] else "")
        out.append(f"  since    {s['since']}  {mv['action']} by {mv['actor']}{forced}")
    return "\n".join(out)


def history_text(rows: list[dict]) -> str:
    lines = [f"{'seq':>4}  {'when':<24}  {'action':<8}  {'adapter':<12}  {'run':<27}  {'actor':<10}  reason"]
    for i, h in enumerate(rows):
        mark = "*" if i == len(rows) - 1 else " "
        action = h["action"] + ("!" if h["forced"] else "")
        lines.append(f"{h['seq']:>3}{mark}  {h['created']:<24}  {action:<8}  {_short(h['adapter_hash']):<12}  "
                     f"{h['run_id'] or '-':<27}  {h['actor'] or '-':<10}  {h['reason'] or ''}")
    lines.append("(* active now; ! forced)")
    return "\n".join(lines)


def runs_text(rows: list[dict]) -> str:
    if not rows:
        return "no runs recorded yet"
    lines = [f"{'run':<27}  {'status':<11}  {'created':<24}  {'adapter':<12}  {'gate':<7}  {'serving':<12}  name / blocking rules"]
    for r in rows:
        g = r.get("gate")
        verdict = "-" if not g else ("passed" if g["passed"] else "FAILED")
        serving = ",".join(r.get("serving") or []) or "-"
        status = r["status"] if r["status"] != "running" or not r.get("stage") else f"running:{r['stage']}"
        lines.append(f"{r['id']:<27}  {status:<11}  {r['created']:<24}  {_short(r['adapter_hash']):<12}  {verdict:<7}  "
                     f"{serving:<12}  {r['name'] or ''}")
        if g and g["blocking"]:
            more = f" and {len(g['blocking']) - 3} more" if len(g["blocking"]) > 3 else ""
            lines.append(f"{'':<27}  blocked by: {'; '.join(g['blocking'][:3])}{more}")
        cost = _cost_text(r.get("cost") or {})
        if cost:
            lines.append(f"{'':<27}  cost: {cost}")
    return "\n".join(lines)


def _cost_text(cost: dict) -> str:
    """`train 243 s; ticket_triage per call: baseline 182+73 tok 5.44 s, candidate 182+42 tok
    4.09 s`: prompt+completion tokens and latency p50, for the first suite that has them."""
    parts = [f"train {cost['train_s']:.0f} s"] if cost.get("train_s") is not None else []
    per = cost.get("per_call") or {}
    suites = [s for role in per.values() for s in role]
    timed = [s for s in suites if any((role.get(s) or {}).get("latency_p50") is not None for role in per.values())]
    suite = (timed or suites or [None])[0]
    if suite:
        arms = []
        for role, by_suite in per.items():
            v = by_suite.get(suite)
            if not v:
                continue
            tok = "+".join(f"{v[k]:.0f}" for k in ("prompt_tokens", "completion_tokens") if v.get(k) is not None)
            lat = f" {v['latency_p50']:.2f} s" if v.get("latency_p50") is not None else ""
            arms.append(f"{role} {tok} tok{lat}")
        parts.append(f"{suite} per call (prompt+completion, p50): " + ", ".join(arms))
    return "; ".join(parts)


def show_text(info: dict) -> str:
    r = info["run"]
    env = r.get("environment") or {}
    git = env.get("git") or {}
    libs = env.get("libraries") or {}
    lines = [
        f"run       {r['id']}{'  (' + r['name'] + ')' if r.get('name') else ''}",
        f"kind      {r['kind']}   status {r['status']}   stage {r['stage'] or '-'}",
        f"created   {r['created']}   finished {r.get('finished') or '-'}",
        f"config    {_short(r['config_hash'])}  {json.dumps(r['config'], sort_keys=True)}",
        f"seeds     {json.dumps(r['seeds']) if r.get('seeds') else '-'}",
        f"base      {r.get('base_fingerprint') or '-'}"
        + (f"  (hub commit {(r.get('extra') or {})['base_revision']})" if (r.get("extra") or {}).get("base_revision") else ""),
        f"dataset   {r.get('dataset_hash') or '-'}",
        f"adapter   {r.get('adapter_hash') or '-'}" + (f"  ({info['adapter']['method']})" if info.get("adapter") else ""),
        f"report    {r.get('report_path') or '-'}",
        f"env       python {env.get('python', '?')}  torch {libs.get('torch') or '-'}  transformers "
        f"{libs.get('transformers') or '-'}  peft {libs.get('peft') or '-'}  trl {libs.get('trl') or '-'}  "
        f"git {_short(git.get('commit'))}{' (dirty)' if git.get('dirty') else ''}  host {env.get('host', '?')}",
    ]
    for stage, t in (r.get("timings") or {}).items():
        secs = f"{t['seconds']:.1f} s" if t.get("seconds") is not None else "running"
        lines.append(f"stage     {stage:<12} {secs}")
    if r.get("error"):
        lines.append(f"error     {r['error']}")
    for e in info["evals"]:
        lines.append(f"eval      {e['role']:<10} {e['suite']}: {_metrics(headline(e['metrics']))}")
    for g in info["gates"]:
        lines.append(f"gate      #{g['id']} {'passed' if g['passed'] else 'FAILED'}  {g['created']}")
    if info["active_on"]:
        lines.append(f"active on {', '.join(info['active_on'])}")
    for x in info.get("exports") or []:
        lines.append(f"export    {x['format']} of {x['channel']} {'written to ' + x['path'] if x['passed'] else 'REFUSED'}: "
                     f"{fidelity_text(x['fidelity'])}")
    return "\n".join(lines)


def fidelity_text(f: dict) -> str:
    """One line: how closely a merged model reproduces base + adapter on the gate's cases."""
    worst = max(f.get("deltas", {}).items(), key=lambda kv: abs(kv[1]), default=None)
    return (f"{f['identical']}/{f['generated']} outputs token-identical ({f['identical_rate']:.3f}, needs "
            f"{f['min_identical']:g}); {f['choices_agree']}/{f['choices']} choices agree"
            + (f"; largest metric delta {worst[0]} {worst[1]:+.4f} (allowed {f['max_delta']:g})" if worst else ""))


def verify_text(rows: list[dict]) -> str:
    if not rows:
        return "no adapters stored"
    lines = []
    for r in rows:
        note = "" if r["registered"] else "  (in the store, not in the registry)"
        lines.append(f"ok       {r['hash']}{note}" if r["ok"] else f"DAMAGED  {r['hash']}: {r['problem']}")
    bad = sum(not r["ok"] for r in rows)
    lines.append(f"{len(rows)} adapter(s) checked, {bad} damaged")
    return "\n".join(lines)

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
    lines = [f"{'run':<27}  {'kind':<6}  {'status':<11}  {'stage':<10}  {'created':<24}  {'adapter':<12}  name"]
    for r in rows:
        lines.append(f"{r['id']:<27}  {r['kind']:<6}  {r['status']:<11}  {r['stage'] or '-':<10}  {r['created']:<24}  "
                     f"{_short(r['adapter_hash']):<12}  {r['name'] or ''}")
    return "\n".join(lines)


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
        f"base      {r.get('base_fingerprint') or '-'}",
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
    return "\n".join(lines)


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

"""`harness export CHANNEL --format hf --out DIR`: the channel's adapter as a folder Hugging Face
tools open as it is (`AutoPeftModelForCausalLM.from_pretrained(DIR)`, `push_to_hub`).

The stored adapter names its base by the run's spec (`smollm2-135m-instruct`, `org/name@v1`), so
its hash does not depend on the machine; peft cannot load an alias or an `@revision`. The export
is a copy of the verified files with `base_model_name_or_path` a loadable id or folder (a hub id
with peft's `revision` set to the commit the run resolved, or the local folder the base resolved
to here) and a model card `README.md`: base, method, adapter hash, the run, its gate verdict and
every rule with baseline, candidate, delta, interval and n. The stored adapter is never changed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from harness.errors import HarnessError


def loadable_base(spec: str, commit: str | None) -> tuple[str, str | None]:
    """(base_model_name_or_path, revision) peft can load the spec's base from: a hub id at the
    commit the run resolved (else the one it resolves to now), otherwise the folder it resolves to."""
    from harness.models.specs import hub_commit, hub_id, resolve

    resolved = resolve(spec)
    if resolved.kind == "hub":
        repo, revision = hub_id(spec)
        return repo, commit or hub_commit(resolved.path) or revision
    return str(resolved.path), None


def export_hf(reg, channel: str, out: str | Path) -> dict:
    """Write the channel's adapter to `out` (new or empty) for HF tools; returns what was written."""
    row = next((r for r in reg.status() if r["channel"] == channel), None)
    src = Path(reg.export(channel, fmt="path"))  # verified against its manifest; the registry names the channels
    method = row["adapter"]["method"]
    if not (src / "adapter_config.json").is_file():
        raise HarnessError(f"channel {channel!r} serves a {method or 'full'} model, not a peft adapter: "
                           "export --format path gives its folder, which transformers opens as it is")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise HarnessError(f"{out} exists and is not an empty folder: give a new or empty one")
    run = reg.get_run(row["run_id"]) if row["run_id"] else None
    spec = row["base_model"]["spec"]
    if not spec:
        raise HarnessError(f"channel {channel!r}: its base model {row['base_model']['fingerprint'][:12]} is not recorded")
    name, revision = loadable_base(spec, ((run or {}).get("extra") or {}).get("base_revision"))
    out.mkdir(parents=True, exist_ok=True)
    # the store's manifest lists the stored bytes (this config differs): the card names the hash instead
    for f in sorted(p for p in src.iterdir() if p.is_file() and p.name not in ("README.md", "manifest.json")):
        shutil.copy2(f, out / f.name)
    cfg = json.loads((out / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = name
    cfg["revision"] = revision
    (out / "adapter_config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True))
    gate = reg.latest_gate(run["id"]) if run else None
    adapter_hash = row["adapter"]["hash"]
    (out / "README.md").write_text(model_card(channel, spec, name, revision, adapter_hash, method, run, gate))
    return {"path": str(out.resolve()), "base_model_name_or_path": name, "revision": revision,
            "adapter_hash": adapter_hash, "gate_passed": bool(gate and gate["passed"])}


def model_card(channel, spec, name, revision, adapter_hash, method, run, gate) -> str:
    """The card: YAML front matter the hub reads (base_model, library_name), then the gate's own
    Markdown summary of the decision (every rule with baseline, candidate, delta, interval, n)."""
    from harness.gates.decision import GateDecision

    front = ["---", f"base_model: {json.dumps(name)}", "library_name: peft", "tags: [harness, " +
             json.dumps(method or "adapter") + "]", "---", ""]
    lines = [f"# {channel}: a {method or 'peft'} adapter gated by harness", "",
             f"- base model: `{spec}` (loaded from `{name}`{f' at revision {revision}' if revision else ''})",
             f"- adapter hash: `{adapter_hash}`", f"- run: `{run['id']}`" if run else "- run: not recorded"]
    if gate is None:
        return "\n".join(front + lines + ["", "No gate decision is recorded for this adapter."]) + "\n"
    decision = GateDecision.from_dict(gate["decision"])
    lines += [f"- gate: **{'PASSED' if gate['passed'] else 'FAILED'}** under policy `{decision.policy}` ({gate['created']})",
              "", decision.to_markdown()]
    return "\n".join(front + lines) + "\n"

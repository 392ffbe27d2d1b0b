"""Channels: named pointers (`production`, `staging`, ...) to the adapter being served, moved only
by promotion and rollback, with an append-only history and audit log.

Promotion needs the run to be finished, its latest gate decision to have passed and its base
model to be the channel's base (a new channel takes any base); `force=True` overrides these but
only with a reason, which the audit log keeps (an adapter whose files fail verification is
refused, forced or not). A promote entry's `replaced_id` names the promotion that was
in effect before it, so promotions form a stack: rollback returns to the promotion in effect
before the current one (its `restored_id`), and a second rollback goes one further back. History
rows are never changed; a rollback appends one.

Each move is one `BEGIN IMMEDIATE` transaction (read pointer, append history, move pointer,
append audit), so concurrent promotions and rollbacks are serialised and none is lost.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from harness.registry.environment import default_actor
from harness.registry.errors import NotFound, PromotionRefused, RegistryError, RollbackRefused, TamperedAdapter
from harness.registry.schema import decode, now

CHANNEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
EXPORT_FORMATS = ("vllm", "lora-modules", "path")


def check_channel_name(channel: str) -> str:
    if not CHANNEL_RE.match(channel or ""):
        raise RegistryError(f"channel name {channel!r} is not allowed: use letters, digits, '.', '_' or '-' "
                            "(up to 64, starting with a letter or digit), e.g. production")
    return channel


def headline(metrics: dict | None) -> dict:
    """The scalar value of each metric of an eval summary ({name: {"value": ...}} or {name: number})."""
    if not isinstance(metrics, dict):
        return {}
    if isinstance(metrics.get("metrics"), dict):  # a whole summary.json was recorded
        metrics = metrics["metrics"]
    out = {}
    for name, m in metrics.items():
        if isinstance(m, dict) and isinstance(m.get("value"), (int, float)):
            out[name] = m["value"]
        elif isinstance(m, (int, float)) and not isinstance(m, bool):
            out[name] = m
    return out


def failed_rules(decision: dict | None) -> list[str]:
    """The rules that blocked a gate decision (`metric [slice] test`), as `GateDecision.to_dict`
    writes them (`blocking: true`); older shapes with `passed: false` and a `name` are read too."""
    rules = (decision or {}).get("rules") if isinstance(decision, dict) else None
    if not isinstance(rules, list):
        return []
    return [rule_label(r) for r in rules if isinstance(r, dict) and (r.get("blocking") is True or r.get("passed") is False)]


def rule_label(r: dict) -> str:
    """`metric [slice] test` of a recorded rule result (`name` for older shapes)."""
    if r.get("metric") and r.get("test"):
        where = f" [{r['slice']}]" if r.get("slice") else ""
        return f"{r['metric']}{where} {r['test']}"
    return str(r.get("name") or r.get("rule") or r.get("metric") or "?")


class ChannelOps:
    """Channel methods of `Registry` (promote, rollback, status, history, audit, export)."""

    def _channel_row(self, channel: str) -> dict | None:
        return self._one("channels", "SELECT * FROM channels WHERE name = ?", [channel])

    def _require_channel(self, channel: str) -> dict:
        row = self._channel_row(channel)
        if row is None:
            names = self.channels()
            known = f"channels: {', '.join(names)}" if names else "no channel has been promoted to yet"
            raise NotFound(f"no channel {channel!r} in {self.path} ({known})")
        return row

    def _history_row(self, history_id: int) -> dict:
        return self._one("channel_history", "SELECT * FROM channel_history WHERE id = ?", [history_id])

    def _in_effect(self, ch: dict) -> dict:
        """The promotion a channel now serves: its last entry, or the one that entry rolled back to."""
        last = self._history_row(ch["history_id"])
        return self._history_row(last["restored_id"]) if last["action"] == "rollback" else last

    def channels(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT name FROM channels ORDER BY name")]

    def _move(self, channel: str, cur: dict | None, *, action: str, adapter_hash: str, base: str, run_id: str | None,
              replaced_id: int | None, restored_id: int | None, forced: bool, actor: str, reason: str | None) -> dict:
        """Append the history entry and move the pointer (inside the caller's transaction)."""
        t = now()
        if cur is None:
            self.db.execute("INSERT INTO channels (name, adapter_hash, base_fingerprint, run_id, created, updated) "
                            "VALUES (?, ?, ?, ?, ?, ?)", [channel, adapter_hash, base, run_id, t, t])
        seq = self.db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM channel_history WHERE channel = ?", [channel]).fetchone()[0]
        hid = self.db["channel_history"].insert({
            "channel": channel, "seq": seq, "action": action, "adapter_hash": adapter_hash, "base_fingerprint": base,
            "run_id": run_id, "from_adapter_hash": cur["adapter_hash"] if cur else None, "replaced_id": replaced_id,
            "restored_id": restored_id, "forced": int(forced), "actor": actor, "reason": reason, "created": t,
        }).last_pk
        self.db.execute("UPDATE channels SET adapter_hash = ?, base_fingerprint = ?, run_id = ?, history_id = ?, updated = ? "
                        "WHERE name = ?", [adapter_hash, base, run_id, hid, t, channel])
        return self._history_row(hid)

    # ---- moves -----------------------------------------------------------------------------
    def promote(self, run_id: str, channel: str, *, force: bool = False, reason: str | None = None,
                actor: str | None = None) -> dict:
        """Point `channel` at the run's adapter; return the new history entry.

        Refused (`PromotionRefused`) unless the run is finished, its latest gate decision passed
        and its base model is the channel's; `force` overrides these and needs a `reason`.
        """
        check_channel_name(channel)
        reason = (reason or "").strip() or None
        if force and not reason:
            raise PromotionRefused('--force needs --reason "why": a forced promotion is recorded in the audit log with its reason')
        actor = actor or default_actor()
        with self._write():
            run = self._run_row(run_id)
            adapter_hash = run["adapter_hash"] or next(iter(r[0] for r in self.db.execute(
                "SELECT hash FROM adapters WHERE run_id = ? ORDER BY created DESC LIMIT 1", [run_id])), None)
            if not adapter_hash:
                raise PromotionRefused(f"run {run_id} has no adapter to promote (status {run['status']}, "
                                       f"stage {run['stage'] or '-'}); only a run that stored an adapter can be promoted")
            adapter = self._adapter_row(adapter_hash)
            if adapter is None or adapter["deleted"]:
                raise PromotionRefused(f"run {run_id}'s adapter {adapter_hash[:12]} is not in the registry's store "
                                       f"({'deleted ' + adapter['deleted'] if adapter else 'never added'})")
            try:  # damaged weights never go live, --force or not
                self.store.verify(adapter_hash)
            except TamperedAdapter as e:
                raise PromotionRefused(f"refusing to promote run {run_id} to channel {channel}: {e}") from None
            base = run["base_fingerprint"] or adapter["base_fingerprint"]
            cur = self._channel_row(channel)
            if cur and cur["adapter_hash"] == adapter_hash:
                raise PromotionRefused(f"adapter {adapter_hash[:12]} of run {run_id} is already active on channel {channel}")
            problems = []
            if run["status"] != "finished":  # a running, failed or interrupted run is never served unforced
                problems.append(f"run {run_id} is {run['status']} (stage {run['stage'] or '-'}), not finished")
            gate = self.latest_gate(run_id)
            if gate is None:
                problems.append(f"run {run_id} has no gate decision (run its gate first)")
            elif not gate["passed"]:
                failed = failed_rules(gate["decision"])
                rules = f" on {', '.join(failed)}" if failed else ""
                problems.append(f"run {run_id}'s latest gate decision (#{gate['id']}, {gate['created']}) failed{rules}")
            if cur and cur["base_fingerprint"] != base:
                spec = (self.get_base_model(cur["base_fingerprint"]) or {}).get("spec") or "unregistered"
                problems.append(f"run {run_id} was trained on base {base[:12]} but channel {channel} serves base "
                                f"{cur['base_fingerprint'][:12]} ({spec})")
            if problems and not force:
                raise PromotionRefused(f"refusing to promote run {run_id} to channel {channel}: {'; '.join(problems)}. "
                                       'Fix that, or override with --force --reason "why" (recorded in the audit log)')
            entry = self._move(channel, cur, action="promote", adapter_hash=adapter_hash, base=base, run_id=run_id,
                               replaced_id=self._in_effect(cur)["id"] if cur else None, restored_id=None, forced=force,
                               actor=actor, reason=reason)
            self._audit("promote", actor=actor, reason=reason, forced=force, channel=channel, run_id=run_id,
                        adapter_hash=adapter_hash, history_id=entry["id"],
                        details={"gate_id": gate["id"] if gate else None, "gate_passed": gate["passed"] if gate else None,
                                 "overridden": problems, "from_adapter": cur["adapter_hash"] if cur else None,
                                 "base_fingerprint": base})
        return entry

    def rollback(self, channel: str, *, actor: str | None = None, reason: str | None = None) -> dict:
        """Point `channel` back at the adapter promoted before the current one; return the new entry."""
        check_channel_name(channel)
        actor = actor or default_actor()
        reason = (reason or "").strip() or None
        with self._write():
            cur = self._require_channel(channel)
            promo = self._in_effect(cur)
            if promo["replaced_id"] is None:
                raise RollbackRefused(f"channel {channel} has nothing to roll back to: adapter {cur['adapter_hash'][:12]} "
                                      f"(run {cur['run_id']}) is the earliest promotion left on it; promote another run instead")
            target = self._history_row(promo["replaced_id"])
            adapter = self._adapter_row(target["adapter_hash"])
            if adapter is None or adapter["deleted"]:
                raise RollbackRefused(f"channel {channel} would roll back to adapter {target['adapter_hash'][:12]}, "
                                      "which was deleted; promote a run instead")
            try:
                self.store.verify(target["adapter_hash"])
            except TamperedAdapter as e:
                raise RollbackRefused(f"refusing to roll channel {channel} back: {e}") from None
            entry = self._move(channel, cur, action="rollback", adapter_hash=target["adapter_hash"],
                               base=target["base_fingerprint"], run_id=target["run_id"], replaced_id=promo["id"],
                               restored_id=target["id"], forced=False, actor=actor, reason=reason)
            self._audit("rollback", actor=actor, reason=reason, channel=channel, run_id=target["run_id"],
                        adapter_hash=target["adapter_hash"], history_id=entry["id"],
                        details={"from_adapter": cur["adapter_hash"], "from_run": cur["run_id"], "restored_entry": target["id"]})
        return entry

    # ---- reading ---------------------------------------------------------------------------
    def history(self, channel: str) -> list[dict]:
        """Every move of a channel, oldest first."""
        self._require_channel(channel)
        return [decode("channel_history", r) for r in
                self.db.query("SELECT * FROM channel_history WHERE channel = ? ORDER BY seq", [channel])]

    def audit(self, limit: int = 50) -> list[dict]:
        """The audit log, newest first."""
        return [decode("audit_log", r) for r in self.db.query("SELECT * FROM audit_log ORDER BY id DESC LIMIT ?", [limit])]

    def status(self) -> list[dict]:
        """Per channel: what it serves (base, adapter, run, data, config, evals, gate) and since when."""
        out = []
        for ch in (decode("channels", r) for r in self.db.query("SELECT * FROM channels ORDER BY name")):
            run = self.get_run(ch["run_id"]) if ch["run_id"] else None
            adapter = self._adapter_row(ch["adapter_hash"]) or {}
            entry = self._history_row(ch["history_id"])
            evals = {}
            for e in self.evals(ch["run_id"], role="candidate") if run else []:
                evals[e["suite"]] = headline(e["metrics"])  # later records of a suite win
            gate = self.latest_gate(ch["run_id"]) if run else None
            data = self.get_dataset(run["dataset_hash"]) if run and run.get("dataset_hash") else None
            out.append({
                "channel": ch["name"],
                "base_model": {"spec": (self.get_base_model(ch["base_fingerprint"]) or {}).get("spec"),
                               "fingerprint": ch["base_fingerprint"]},
                "adapter": {"hash": ch["adapter_hash"], "method": adapter.get("method"),
                            "path": str(self.store.path_for(ch["adapter_hash"])), "size_bytes": adapter.get("size_bytes")},
                "run_id": ch["run_id"],
                "dataset": {"hash": run.get("dataset_hash"), "path": data and data["path"], "rows": data and data["rows"]}
                if run else None,
                "config": run["config"] if run else None,
                "config_hash": run["config_hash"] if run else None,
                "evals": evals,
                "gate": {"passed": gate["passed"], "id": gate["id"], "created": gate["created"]} if gate else None,
                "since": ch["updated"],
                "last_move": {"action": entry["action"], "actor": entry["actor"], "forced": entry["forced"],
                              "reason": entry["reason"], "seq": entry["seq"]},
            })
        return out

    def export(self, channel: str, fmt: str = "vllm", port: int = 8000) -> str:
        """How to serve a channel's adapter. `vllm`: a complete `vllm serve` command (the base's
        folder, --enable-lora, --max-lora-rank from the adapter's config, the adapter under the
        channel's name and under the name the harness looks it up by, the dtype its gate was
        evaluated in); `lora-modules`: only vLLM's `--lora-modules NAME=PATH` (`--model PATH` for a
        fully fine-tuned model); `path`: the folder.

        The adapter is verified first; a damaged one raises `TamperedAdapter` instead of exporting.
        """
        if fmt not in EXPORT_FORMATS:
            raise RegistryError(f"export format {fmt!r} is not one of {', '.join(EXPORT_FORMATS)}")
        cur = self._require_channel(channel)
        path: Path = self.adapter_path(cur["adapter_hash"])
        if fmt == "path":
            return str(path)
        from harness.models.openai_backend import SERVED_METHODS

        method = (self._adapter_row(cur["adapter_hash"]) or {}).get("method")
        full = method == "full"  # a whole model, not an adapter
        if fmt == "vllm" and not full and method not in SERVED_METHODS:
            raise RegistryError(f"channel {channel!r} serves a {method} adapter, which vLLM does not serve as it was gated "
                                f"(it serves LoRA adapters on the unquantised base: {', '.join(SERVED_METHODS)}): "
                                "export --format path and load it with peft")
        if fmt == "lora-modules":
            if full:
                return f"--model {shlex.quote(str(path))} --served-model-name {shlex.quote(channel)}"
            return f"--lora-modules {shlex.quote(f'{channel}={path}')}"
        return shlex.join(self._serve_argv(channel, cur, path, full, port))

    def _serve_argv(self, channel: str, cur: dict, path: Path, full: bool, port: int) -> list[str]:
        import json

        from harness.models.openai_backend import served_adapter_name
        from harness.models.server import lora_rank_for, machine_args
        from harness.models.specs import resolve

        dtype = self.gated_dtype(cur.get("run_id"))
        tail = [*(["--dtype", dtype] if dtype else []), *machine_args(), "--port", str(port)]
        if full:
            return ["vllm", "serve", str(path), "--served-model-name", channel, *tail]
        base = self.get_base_model(cur["base_fingerprint"])
        if base is None:
            raise RegistryError(f"channel {channel!r}: its base model {cur['base_fingerprint'][:12]} is not recorded")
        rank = json.loads((path / "adapter_config.json").read_text()).get("r") or 16
        name = served_adapter_name(cur["adapter_hash"])
        return ["vllm", "serve", str(resolve(base["spec"]).path), "--served-model-name", "base", "--enable-lora",
                "--max-lora-rank", str(lora_rank_for(int(rank))), "--lora-modules", f"{channel}={path}", f"{name}={path}", *tail]

    def gated_dtype(self, run_id: str | None) -> str | None:
        """The dtype the run's candidate was evaluated in (what the gate passed), if recorded."""
        import json

        for e in self.evals(run_id, role="candidate") if run_id else []:
            summary = Path(e["results_path"]) / "summary.json"
            try:
                dtype = (json.loads(summary.read_text()).get("identity") or {}).get("dtype")
            except (OSError, ValueError):  # missing or unreadable: the command then leaves the dtype to vLLM
                continue
            if dtype in ("float32", "bfloat16", "float16"):
                return dtype
        return None

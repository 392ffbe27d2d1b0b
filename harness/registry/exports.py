"""The registry's `exports` table: a channel's adapter exported (merged into its base), with the
merge-fidelity check that allowed or refused it. `harness show` and the run's report read it."""

from __future__ import annotations

from harness.registry.schema import decode, dumps, now, stored_path


class ExportOps:
    """Mixed into `Registry`: exports."""

    def record_export(self, *, channel: str, run_id: str | None, adapter_hash: str, fmt: str, path: str | None,
                      fidelity: dict, passed: bool) -> dict:
        with self.transaction():
            pk = self.db["exports"].insert({
                "channel": channel, "run_id": run_id, "adapter_hash": adapter_hash, "format": fmt, "path": stored_path(path),
                "fidelity": dumps(fidelity), "passed": int(passed), "created": now(),
            }).last_pk
        return self.exports(export_id=pk)[0]

    def exports(self, run_id: str | None = None, export_id: int | None = None) -> list[dict]:
        """Exports, oldest first: of one run's adapter, or one by id, or all."""
        where, args = ("WHERE id = ?", [export_id]) if export_id is not None else \
            (("WHERE run_id = ?", [run_id]) if run_id else ("", []))
        return [decode("exports", r) for r in self.db.query(f"SELECT * FROM exports {where} ORDER BY id", args)]

"""`DataReport`: the findings and summary of one data check, as JSON and as terminal tables."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SEVERITIES = ("error", "warning", "info")
# Findings of these checks block a training run unless overridden with a recorded reason.
BLOCKING_CHECKS = frozenset({"format", "leakage", "pii"})


def finding(check: str, severity: str, message: str, locations=(), **details: Any) -> dict:
    """One finding: {check, severity, message, locations: ["file:line", ...], details}."""
    assert severity in SEVERITIES, severity
    return {"check": check, "severity": severity, "message": message, "locations": list(locations), "details": details}


def is_blocking(f: dict) -> bool:
    return f["severity"] == "error" and f["check"] in BLOCKING_CHECKS


@dataclass
class DataReport:
    """What `check_data` found in one training file."""

    path: str
    data_hash: str
    format: str
    findings: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    @property
    def blocking(self) -> list[dict]:
        """Findings that stop a run by default: malformed records, leakage into any suite, PII/secrets."""
        return [f for f in self.findings if is_blocking(f)]

    @property
    def ok(self) -> bool:
        return not self.blocking

    def counts(self) -> dict[str, int]:
        return {s: sum(f["severity"] == s for f in self.findings) for s in SEVERITIES}

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "data_hash": self.data_hash,
            "format": self.format,
            "ok": self.ok,
            "blocking": len(self.blocking),
            "counts": self.counts(),
            "summary": self.summary,
            "settings": self.settings,
            "findings": self.findings,
        }

    def write_json(self, out: str | Path) -> Path:
        p = Path(out)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n")
        return p

    def render(self, console=None, max_findings: int = 40, max_locations: int = 4) -> None:
        """The summary and the findings as rich tables, then one verdict line."""
        from rich.console import Console
        from rich.table import Table

        con = console or Console()
        s = self.summary
        t = Table(title=f"data check: {self.path}  ({s.get('records', 0)} records, {self.format}, sha256 {self.data_hash[:12]})",
                  title_justify="left", show_header=False)
        t.add_column("what")
        t.add_column("value")
        for key, value in summary_rows(s):
            t.add_row(key, value)
        con.print(t)

        if self.findings:
            order = {sev: i for i, sev in enumerate(SEVERITIES)}
            shown = sorted(self.findings, key=lambda f: (order[f["severity"]], not is_blocking(f)))[:max_findings]
            ft = Table(title="findings", title_justify="left")
            ft.add_column("severity")
            ft.add_column("check")
            ft.add_column("message")
            ft.add_column("where")
            style = {"error": "bold red", "warning": "yellow", "info": "dim"}
            for f in shown:
                where = short_locations(f["locations"], self.path, max_locations)
                sev = f["severity"] + (" (blocks)" if is_blocking(f) else "")
                ft.add_row(f"[{style[f['severity']]}]{sev}[/]", f["check"], f["message"], where)
            con.print(ft)
            if len(self.findings) > len(shown):
                con.print(f"[dim]... {len(self.findings) - len(shown)} more findings: see --json[/dim]")
        c = self.counts()
        tally = ", ".join(_plural(c[k], w) for k, w in (("error", "error"), ("warning", "warning"), ("info", "note")))
        if self.ok:
            con.print(f"[green]ok[/green]: nothing blocking ({tally})")
        else:
            by: dict[str, int] = {}
            for f in self.blocking:
                by[f["check"]] = by.get(f["check"], 0) + 1
            what = ", ".join(f"{k} {v}" for k, v in sorted(by.items()))
            con.print(f"[bold red]blocked[/bold red]: {_plural(len(self.blocking), 'blocking finding')} ({what}); {tally}")


def short_locations(locations: list[str], path: str, limit: int = 4) -> str:
    """'lines 3, 17, 40 +2 more' when every location is in the checked file; else the locations."""
    own = f"{path}:"
    more = f" +{len(locations) - limit} more" if len(locations) > limit else ""
    if locations and all(x.startswith(own) for x in locations):
        return ("line " if len(locations) == 1 else "lines ") + ", ".join(x[len(own):] for x in locations[:limit]) + more
    return ", ".join(locations[:limit]) + more


def summary_rows(s: dict) -> list[tuple[str, str]]:
    """The summary as (label, value) rows for a table (terminal or HTML)."""
    rows = [("records", f"{s.get('records', 0)} ({_kv(s.get('formats', {}))}); malformed {s.get('malformed', 0)}")]
    if s.get("hub"):
        rows.insert(0, ("hub file", f"commit {s['hub']['commit']}, read from {s['hub']['file']}"))
    if "suites" in s:
        scope = [f"{x['name']} ({x['cases']} cases)" for x in s["suites"]]
        scope += [f"{h['path']} ({h['records']} records)" for h in s.get("held_out", [])]
        rows.append(("leakage scope", ", ".join(scope) or "nothing: pass --suites"))
    rows.append(("leaks", f"{_plural(s.get('leaks', 0), 'record')} overlapping {s.get('leaked_cases', 0)} eval cases or held-out records"))
    rows.append(("duplicates", f"{s.get('exact_duplicate_groups', 0)} exact groups, {s.get('near_duplicate_groups', 0)} near groups, "
                 f"{s.get('conflicting_groups', 0)} same prompt with different answers"))
    rows.append(("PII / secrets", f"{_plural(s.get('pii', 0), 'record')} with real-looking values; "
                 f"{s.get('pii_placeholders', 0)} with placeholders (example.com, test cards)"))
    ln = s.get("answer_chars") or {}
    if ln:
        rows.append(("answer length (chars)", f"median {ln['p50']:.0f}, p95 {ln['p95']:.0f}, max {ln['max']:.0f}; "
                     f"{s.get('verbose_answers', 0)} too verbose (> {ln.get('outlier_above', 0):.0f})"))
    st = s.get("answer_styles") or {}
    if st:
        rows.append(("answer styles", _kv(st)))
    if s.get("schema"):
        rows.append(("schema", f"{s.get('schema_failures', 0)} answers fail {s['schema']}"))
    for fld, counts in (s.get("label_balance") or {}).items():
        rows.append((f"labels: {fld}", _kv(counts)))
    for fld, counts in (s.get("slices") or {}).items():
        rows.append((f"slices: {fld}", _kv(counts)))
    rows.append(("refusal examples", str(s.get("refusal_examples", 0))))
    sd = s.get("stale_dates") or {}
    rows.append(("stale dates", f"{_plural(sd.get('mentions', 0), 'mention')} in {_plural(sd.get('records', 0), 'record')} "
                 f"(years {sd.get('since', '?')[:4]} to {int(sd.get('before', '1')[:4]) - 1}, {sd.get('horizon_years')}-year horizon)"))
    return rows


def _kv(d: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items())


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"

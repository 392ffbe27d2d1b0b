"""The terminal summary: per suite its metrics, slices and threshold, then the gate."""

from __future__ import annotations

from harness.pytest_plugin.state import HarnessState, meets


def _fmt_metric(m: dict) -> tuple[str, str]:
    v, ci = m.get("value"), m.get("ci")
    if v is None or v != v:
        return "-", ""
    if m["kind"] == "latency":
        return f"{v:.2f} s", ""
    if m["kind"] == "mean":
        return f"{v:.1f}", (f"[{ci[0]:.1f}, {ci[1]:.1f}]" if ci else "")
    return f"{v:.3f}", (f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def _table(header: list[str], rows: list[list[str]], indent: str = "  ") -> list[str]:
    """Plain-text columns (CI logs have no colours): first column left, the rest right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def fmt(row) -> str:
        cells = (str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        return (indent + "  ".join(cells)).rstrip()

    return [fmt(header), *(fmt(r) for r in rows)]


HEADLINE_COLUMNS = 6


def summary_lines(state: HarnessState) -> list[str]:
    """Per suite: metrics (value, 95 % interval, n), headline rates per slice, threshold; then the gate."""
    lines = []
    any_r = next(iter(state.results.values()))
    adapter = f"adapter {any_r.adapter_hash[:12]}" if any_r.adapter_hash else "no adapter"
    lines.append(f"model {state.model} (fingerprint {any_r.model_fingerprint[:12]}, {adapter}); results in {state.out_dir}")
    for name, r in state.results.items():
        suite = state.suites[name]
        rate, n, failed = state.rates[name]
        head = f"{name}: {n} cases, pass rate {rate:.3f}"
        t = suite.spec.min_pass_rate
        if t is not None:
            head += (f" >= min_pass_rate {t:g}: met, {len(failed)} failing case(s) tolerated (xfail)" if meets(rate, t)
                     else f" < min_pass_rate {t:g}: NOT met")
        lines += ["", head]
        metrics = r.metrics
        rows = [[k.split("/", 1)[1], *_fmt_metric(m), str(m["n"])] for k, m in metrics.items()]
        lines += _table(["metric", "value", "95% CI", "n"], rows)
        heads = [k for k in metrics if metrics[k]["kind"] == "rate" and "." not in k.split("/", 1)[1] and r.summary["slices"].get(k)]
        heads = sorted(heads, key=lambda k: not k.endswith("/pass_rate"))[:HEADLINE_COLUMNS]
        if heads:
            keys = sorted({s for h in heads for s in r.summary["slices"][h]})
            srows = []
            for key in keys:
                cells = []
                for h in heads:
                    m = r.summary["slices"][h].get(key)
                    cells.append(f"{m['value']:.2f} (n={m['n']})" if m else "-")
                srows.append([key, *cells])
            lines += [""] + _table(["slice", *(h.split("/", 1)[1] for h in heads)], srows)
    d = state.decision
    if d is not None:
        counts = ", ".join(f"{v} {k}" for k, v in sorted(d.counts.items()))
        lines += ["", f"gate (policy {d.policy}) vs {state.baseline_label}: {'PASSED' if d.passed else 'FAILED'} "
                      f"({len(d.blocking)} blocking; {counts})"]
        for r in d.blocking:
            lines.append(f"  blocking: {r.metric}{f' [{r.slice}]' if r.slice else ''} {r.test}: {r.reason}")
    return lines

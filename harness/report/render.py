"""Render the HTML reports: one self-contained file each (inline CSS and SVG, no network).

Autoescaping is on for every template, so model outputs, metric names, reasons and SVG labels
are text, never markup. A Content-Security-Policy in each page allows only its own inline
script (by hash) and inline styles, so even a rendering mistake could not run injected code.
"""

from __future__ import annotations

import base64
import hashlib
import math
import os
from datetime import datetime, timezone
from pathlib import Path

from harness import __version__

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _num(v, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.{digits}f}"
    return str(v)


def _auto(v) -> str:
    """A value of unknown type: whole numbers with separators, floats to 4 significant digits."""
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    if isinstance(v, float):
        return f"{v:.4g}"
    return _num(v)


def _signed(v, digits: int = 3) -> str:
    return "-" if v is None else f"{v:+.{digits}f}"


def _interval(ci, digits: int = 3, signed: bool = False) -> str:
    if not ci or ci[0] is None:
        return ""
    f = (lambda x: f"{x:+.{digits}f}") if signed else (lambda x: f"{x:.{digits}f}")
    return f"[{f(ci[0])}, {f(ci[1])}]"


def _pvalue(p) -> str:
    if p is None:
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _short(h, n: int = 12) -> str:
    return h[:n] if h else "-"


def _bytes(n) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=_num, auto=_auto, signed=_signed, interval=_interval, pvalue=_pvalue, short=_short, bytes=_bytes)
    return env


def _asset(name: str) -> str:
    """A static file placed in the page as it is (the script keeps a .j2 name only so that it is
    packaged with the templates)."""
    return (TEMPLATES / name).read_text(encoding="utf-8")


def csp(script: str | None) -> str:
    """The page's Content-Security-Policy: nothing loads, only this exact inline script runs."""
    scripts = "'none'"
    if script:
        digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
        scripts = f"'sha256-{digest}'"
    return (f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src {scripts}; "
            "base-uri 'none'; form-action 'none'")


def render(template: str, context: dict, script: str | None = None) -> str:
    from markupsafe import Markup

    page = environment().get_template(template)
    return page.render(
        **context, css=Markup(_asset("style.css")), script=Markup(script) if script else None, csp=csp(script),
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"), version=__version__,
    )


def write_page(html: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)
    return path


def _registry(registry):
    if registry is not None:
        return registry
    from harness.registry import Registry

    return Registry(create=False)


def write_run_report(run_id: str, registry=None, out_dir: str | Path = "reports", *, run_dir: str | Path | None = None) -> Path:
    """Write `<out_dir>/<run_id>.html` from what was recorded about the run; return its path.

    registry: a `Registry` (default: the one at `$HARNESS_HOME/registry.db`).
    run_dir: the pipeline's folder of the run (default: `$HARNESS_HOME/runs/<run_id>`).
    """
    from harness.report import provenance, sections
    from harness.report.collect import collect_run

    data = collect_run(run_id, _registry(registry), run_dir)
    context = {
        "head": sections.header(data), "gate": sections.gate(data), "plan": sections.plan(data), "metrics": sections.metrics(data),
        "slices": sections.slices(data), "latency": sections.latency(data), "cost": sections.cost(data), "training": provenance.training(data),
        "data": provenance.data_report(data), "exports": provenance.exports(data), "flips": sections.flips(data), "notes": data.notes,
        "sources": sorted(set(data.sources)), "folder": str(data.folder) if data.folder else "",
    }
    html = render("run.html.j2", context, script=_asset("filter.js.j2"))
    return write_page(html, Path(out_dir) / f"{run_id}.html")


def write_channel_report(channel: str, registry=None, out_dir: str | Path = "reports") -> Path:
    """Write `<out_dir>/channel-<channel>.html`: every promotion and rollback of the channel with
    the headline metrics of what it served after each move; return its path."""
    from harness.report.channel import channel_data

    out = Path(out_dir)
    html = render("channel.html.j2", channel_data(channel, _registry(registry), out))
    return write_page(html, out / f"channel-{channel}.html")

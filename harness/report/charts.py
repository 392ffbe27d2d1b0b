"""Chart geometry for the inline SVG charts: scales, ticks and shapes as plain numbers.

The templates (`templates/charts.html.j2`) draw the shapes, so every label passes through
Jinja2's autoescaping like any other text on the page; nothing here builds markup.
"""

from __future__ import annotations

import math

WIDTH = 960
HALF = 540  # charts that sit in one of two columns
LABEL_W = 250  # room for metric names left of a forest plot
ROW_H = 24
PAD = 28


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About `count` round tick values covering [lo, hi]."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    out, t = [], first
    while t <= hi + step * 1e-9:
        out.append(round(t, 10))
        t += step
    return out


def fmt_tick(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.3g}"


class Scale:
    """Linear map from a data interval to a pixel interval."""

    def __init__(self, lo: float, hi: float, px_lo: float, px_hi: float):
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        self.lo, self.hi, self.px_lo, self.px_hi = lo, hi, px_lo, px_hi

    def __call__(self, v: float) -> float:
        v = min(max(v, self.lo), self.hi)
        return round(self.px_lo + (v - self.lo) / (self.hi - self.lo) * (self.px_hi - self.px_lo), 2)


def _finite(*xs) -> bool:
    return all(isinstance(x, (int, float)) and math.isfinite(x) for x in xs)


def forest(rows: list[dict], *, center: float = 0.0, unit: str = "delta") -> dict | None:
    """A forest plot: one row per {label, value, lo, hi[, limit]} around `center` (0 for a
    difference, 1 for a ratio). Colour says whether the interval excludes the centre."""
    rows = [r for r in rows if _finite(r["value"], r["lo"], r["hi"])]
    if not rows:
        return None
    ext = [abs(v - center) for r in rows for v in (r["lo"], r["hi"], r["value"])]
    ext += [abs(r["limit"] - center) for r in rows if _finite(r.get("limit"))]
    half = max(max(ext) * 1.1, 0.05 if center == 0 else 0.1)
    if center == 0:
        half = min(half, 1.0)
    lo, hi = center - half, center + half
    if center == 1:
        lo = max(lo, 0.0)
    x = Scale(lo, hi, LABEL_W, WIDTH - PAD)
    height = PAD + ROW_H * len(rows) + PAD
    shapes = []
    for i, r in enumerate(rows):
        y = PAD + ROW_H * i + ROW_H / 2
        tone = "up" if r["lo"] > center else "down" if r["hi"] < center else "flat"
        shapes.append({
            "label": r["label"], "y": y, "x": x(r["value"]), "x_lo": x(r["lo"]), "x_hi": x(r["hi"]), "tone": tone,
            "limit": x(r["limit"]) if _finite(r.get("limit")) else None,
            "title": f"{r['label']}: {unit} {r['value']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}]"
            if center == 0 else f"{r['label']}: ratio {r['value']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}]",
        })
    ticks = [{"x": x(t), "label": fmt_tick(t)} for t in nice_ticks(lo, hi, 6)]
    return {"width": WIDTH, "height": height, "rows": shapes, "ticks": ticks, "center": x(center), "label_w": LABEL_W,
            "top": PAD - 8, "bottom": height - PAD + 4, "unit": unit}


def lines(series: list[dict], *, marks: list[dict] = (), x_label: str = "step", y_label: str = "",
          y_range: tuple[float, float] | None = None, width: int = WIDTH, height: int = 260) -> dict | None:
    """A line chart: series [{name, tone, points: [(x, y)], dots}] and vertical marks [{x, label, tone}]."""
    pts = [(px, py) for s in series for px, py in s["points"] if _finite(px, py)]
    if not pts:
        return None
    xs = [p[0] for p in pts] + [m["x"] for m in marks if _finite(m["x"])]
    ys = [p[1] for p in pts]
    x_lo, x_hi = min(xs), max(xs)
    whole_x = all(float(v).is_integer() for v in xs)
    y_lo, y_hi = y_range or (min(ys), max(ys))
    if not y_range:
        span = (y_hi - y_lo) or abs(y_hi) or 1.0
        y_lo, y_hi = y_lo - span * 0.08, y_hi + span * 0.08
    left, right, top, bottom = 56, width - 16, 14, height - 34
    sx, sy = Scale(x_lo, x_hi, left, right), Scale(y_lo, y_hi, bottom, top)
    out = []
    for s in series:
        p = [(sx(a), sy(b)) for a, b in s["points"] if _finite(a, b)]
        if p:
            out.append({"name": s["name"], "tone": s.get("tone", "a"), "path": " ".join(f"{a},{b}" for a, b in p),
                        "dots": p if s.get("dots", len(p) <= 40) else [],
                        "titles": [f"{s['name']} at {x_label} {a:g}: {b:.4g}" for a, b in s["points"] if _finite(a, b)]})
    return {
        "width": width, "height": height, "left": left, "right": right, "top": top, "bottom": bottom,
        "series": out, "x_label": x_label, "y_label": y_label,
        "marks": [{"x": sx(m["x"]), "label": m["label"], "tone": m.get("tone", "mark")} for m in marks if _finite(m["x"])],
        "x_ticks": [{"x": sx(t), "label": fmt_tick(t)} for t in nice_ticks(x_lo, x_hi, 6)
                    if not whole_x or float(t).is_integer()],  # steps and move numbers are whole
        "y_ticks": [{"y": sy(t), "label": fmt_tick(t)} for t in nice_ticks(y_lo, y_hi, 4)],
    }


def strips(groups: list[dict], *, unit: str = "s", width: int = HALF) -> dict | None:
    """Dot strips, one row per {label, tone, values, p50, p95}: before/after distributions."""
    vals = [v for g in groups for v in g["values"] if _finite(v)]
    if not vals:
        return None
    hi = max(vals) * 1.08 or 1.0
    x = Scale(0.0, hi, 130, width - PAD)
    row = 34
    rows = []
    for i, g in enumerate(groups):
        y = 18 + row * i + row / 2
        rows.append({
            "label": g["label"], "tone": g["tone"], "y": y,
            "dots": [{"x": x(v), "title": f"{g['label']}: {v:.4g} {unit}"} for v in g["values"] if _finite(v)],
            "p50": x(g["p50"]) if _finite(g.get("p50")) else None,
            "p95": x(g["p95"]) if _finite(g.get("p95")) else None,
        })
    height = 18 + row * len(groups) + 30
    return {"width": width, "height": height, "rows": rows, "unit": unit, "axis_y": height - 26,
            "ticks": [{"x": x(t), "label": fmt_tick(t)} for t in nice_ticks(0.0, hi, 6)]}


def histogram(groups: list[dict], *, bins: int = 12, unit: str = "tokens", width: int = HALF) -> dict | None:
    """Side-by-side bars per bin for a few groups [{label, tone, values}] on one shared axis."""
    vals = [v for g in groups for v in g["values"] if _finite(v)]
    if not vals:
        return None
    lo, hi = min(vals), max(vals)
    integer = all(float(v).is_integer() for v in vals)
    if integer:  # counts: whole-number bins centred on the values, at least 8 of them
        pad = max(0, 8 - int(hi - lo + 1)) // 2
        lo, hi = max(lo - pad, 0) if lo >= 0 else lo - pad, hi + pad
        width_bin = float(max(1, math.ceil((hi - lo + 1) / bins)))
        bins = int(math.ceil((hi - lo + 1) / width_bin))
        lo, hi = lo - 0.5, lo - 0.5 + bins * width_bin
    elif hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    width_bin = (hi - lo) / bins
    counts = []
    for g in groups:
        c = [0] * bins
        for v in g["values"]:
            if _finite(v):
                c[min(int((v - lo) / width_bin), bins - 1)] += 1
        counts.append(c)
    top = max(max(c) for c in counts) or 1
    left, right, y_top, y_bot = 48, width - PAD, 14, 180
    x = Scale(lo, hi, left, right)
    y = Scale(0, top, y_bot, y_top)
    slot = (right - left) / bins
    bar_w = max(slot / max(len(groups), 1) - 2, 1)
    bars = []
    for gi, (g, c) in enumerate(zip(groups, counts)):
        for b, n in enumerate(c):
            if n:
                b_lo = lo + b * width_bin
                bars.append({"x": round(left + b * slot + 1 + gi * (bar_w + 1), 2), "y": y(n), "w": round(bar_w, 2),
                             "h": round(y_bot - y(n), 2), "tone": g["tone"],
                             "title": f"{g['label']}: {n} with {_bin_label(b_lo, width_bin, integer)} {unit}"})
    return {"width": width, "height": y_bot + 34, "bars": bars, "axis_y": y_bot, "left": left, "right": right,
            "x_ticks": [{"x": x(t), "label": fmt_tick(t)} for t in nice_ticks(lo, hi, 6) if not integer or float(t).is_integer()],
            "y_ticks": [{"y": y(t), "label": fmt_tick(t)} for t in nice_ticks(0, top, 3) if t == int(t)],
            "legend": [{"label": g["label"], "tone": g["tone"]} for g in groups], "unit": unit}


def _bin_label(lo: float, width: float, integer: bool) -> str:
    if integer and width == 1:
        return f"{lo + 0.5:.0f}"
    if integer:
        return f"{lo + 0.5:.0f}-{lo + width - 0.5:.0f}"
    return f"{lo:.3g}-{lo + width:.3g}"


def heat(delta: float | None, scale: float) -> str:
    """Background colour of a heat-map cell: green for gains, red for drops, stronger when larger."""
    if delta is None or not math.isfinite(delta) or scale <= 0:
        return "transparent"
    a = min(abs(delta) / scale, 1.0) * 0.75 + (0.08 if delta else 0)
    return f"rgba(22, 163, 74, {a:.2f})" if delta > 0 else f"rgba(220, 38, 38, {a:.2f})" if delta < 0 else "transparent"

"""The run report's training chart as a self-contained SVG that traindoc draws itself.

Pure Python, no dependency: it works offline, inline in a page, and as an image file for a README or a
slide. Input is plain ``(step, value)`` series, so it does not depend on how a run records them.

Layout: stacked panels sharing the step axis — loss (raw, smoothed, validation), learning rate,
throughput — each only when it has data. Ticks are "nice" numbers (about five per axis); the loss
axis is robust (the top is the 98th percentile of the raw loss, so a first-step spike does not flatten
the rest) or logarithmic when the loss spans more than a factor of 30.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

Points = Sequence[tuple[float, float]]

WIDTH = 680  # fits a 700-px docs column at scale 1: every label is drawn at FONT_PX
FONT_PX = 12
LEFT, RIGHT = 64, 16
LOG_SPAN = 30.0  # loss max/min above this -> log scale
COLORS = {"raw": "#7aa6d6", "smooth": "#1f5fa8", "val": "#d9480f", "lr": "#2b8a3e", "throughput": "#862e9c"}


@dataclass(frozen=True)
class Line:
    name: str
    points: list[tuple[float, float]]
    color: str
    width: float = 2.0
    opacity: float = 1.0
    markers: bool = False


@dataclass
class Panel:
    title: str
    lines: list[Line]
    height: int
    log: bool = False
    robust: bool = False
    notes: list[str] = field(default_factory=list)


def _finite(points: Points) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in points if math.isfinite(x) and math.isfinite(y)]


def smooth(points: Points, span: int | None = None) -> list[tuple[float, float]]:
    """Debiased exponential moving average (as TensorBoard draws it); ``span`` ≈ points averaged."""
    pts = _finite(points)
    if not pts:
        return []
    span = span or max(1, len(pts) // 12)
    beta = 1.0 - 1.0 / span if span > 1 else 0.0
    out, avg = [], 0.0
    for i, (x, y) in enumerate(pts, 1):
        avg = beta * avg + (1 - beta) * y
        out.append((x, avg / (1 - beta**i) if beta else avg))
    return out


def nice_ticks(lo: float, hi: float, count: int = 5, *, integer: bool = False) -> list[float]:
    """About ``count`` round numbers (1, 2, 2.5, 5 × 10^k) covering [lo, hi]; with ``integer`` (a step
    axis) only whole numbers, spaced at least 1 apart."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    steps = [m * mag for m in (1, 2, 2.5, 5, 10)]
    if integer:
        steps = [s for s in steps if s >= 1 and float(s).is_integer()] or [1]
    step = next((s for s in steps if s >= raw), steps[-1])
    # k × step for whole k, rounded a few digits below the step: no drift from repeated adding, no
    # 0.30000000000000004, and tiny ranges (1e-53 wide, or 1e-10 wide around 586,124) keep distinct ticks.
    first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    decimals = max(0, 3 - math.floor(math.log10(step)))
    # Clamped: at float resolution (a range a few ulps wide) a rounded tick may land an ulp outside.
    return sorted({min(max(round(k * step, decimals), lo), hi) for k in range(first, last + 1)})


def log_ticks(lo: float, hi: float) -> list[float]:
    ticks = [10.0**k * m for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1) for m in (1, 2, 5)]
    inside = [t for t in ticks if lo <= t <= hi]
    return inside if len(inside) >= 2 else [lo, hi]


def label(v: float, digits: int = 1) -> str:
    """A short tick label: 1.5k, 0.25, 3e-4 (``digits`` significant digits for small numbers)."""
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 1e6:
        return f"{v / 1e6:g}M"
    if a >= 1e4:
        return f"{v / 1e3:g}k"
    if a < 1e-2:
        return f"{v:.{digits - 1}e}".replace("e-0", "e-")
    return f"{v:.4g}"


def labels(ticks: list[float]) -> list[str]:
    """Tick labels with just enough digits to tell neighbours apart."""
    for digits in range(1, 7):
        out = [label(t, digits) for t in ticks]
        if len(set(out)) == len(out):
            return out
    # Neighbours closer than any short form tells apart (steps 999,999 and 1,000,000): write them in full.
    return [f"{int(t):,}" if float(t).is_integer() else repr(float(t)) for t in ticks]


def _percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * q
    f = math.floor(k)
    c = min(f + 1, len(s) - 1)
    return s[f] + (s[c] - s[f]) * (k - f)


def _y_range(panel: Panel) -> tuple[float, float, bool]:
    ys = [y for ln in panel.lines for _, y in ln.points]
    lo, hi = min(ys), max(ys)
    if panel.log and lo > 0 and hi / lo > LOG_SPAN:
        return lo, hi, True
    if panel.robust and len(ys) >= 10:
        hi = min(hi, _percentile(ys, 0.98))
    if hi == lo:
        lo, hi = lo - (abs(lo) or 1) * 0.1, hi + (abs(hi) or 1) * 0.1
    pad = (hi - lo) * 0.05
    return (0.0 if lo >= 0 and lo - pad < 0 else lo - pad), hi + pad, False


def _panel(panel: Panel, top: float, x0: float, x1: float, width: float) -> list[str]:
    h = panel.height
    plot_top, plot_bottom = top + 22, top + h
    lo, hi, log = _y_range(panel)
    plot_left, plot_right = LEFT, width - RIGHT

    def sx(x: float) -> float:
        return plot_left + (x - x0) / ((x1 - x0) or 1) * (plot_right - plot_left)

    def sy(y: float) -> float:
        if log:
            y = max(y, lo)
            return plot_bottom - (math.log10(y) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * (h - 22)
        y = min(max(y, lo), hi)
        return plot_bottom - (y - lo) / (hi - lo) * (h - 22)

    title = panel.title + (" (log scale)" if log else "") + ("".join(f" · {n}" for n in panel.notes))
    out = [f'<text x="{plot_left}" y="{top + 12:.1f}" font-weight="bold">{escape(title)}</text>']
    ticks = log_ticks(lo, hi) if log else nice_ticks(lo, hi, 4)
    for t, text in zip(ticks, labels(ticks), strict=True):
        y = sy(t)
        out.append(f'<line x1="{plot_left}" x2="{plot_right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{plot_left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(text)}</text>')
    out.append(
        f'<rect x="{plot_left}" y="{plot_top}" width="{plot_right - plot_left}" height="{h - 22}" class="frame"/>'
    )
    legend_x = plot_right
    for ln in reversed(panel.lines):  # legend, right-aligned on the title line (unnamed lines have none)
        if not ln.name:
            continue
        text = escape(ln.name)
        legend_x -= 7 * len(ln.name) + 26
        out.append(
            f'<line x1="{legend_x}" x2="{legend_x + 14}" y1="{top + 8}" y2="{top + 8}" stroke="{ln.color}" '
            f'stroke-width="3" stroke-opacity="{ln.opacity}"/>'
        )
        out.append(f'<text x="{legend_x + 18}" y="{top + 12:.1f}">{text}</text>')
    for ln in panel.lines:
        if not ln.points:
            continue
        pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in ln.points)
        if ln.markers:
            for x, y in ln.points:
                out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="{ln.color}"/>')
            if len(ln.points) > 1:
                out.append(f'<polyline points="{pts}" fill="none" stroke="{ln.color}" stroke-width="1.5"/>')
        else:
            out.append(
                f'<polyline points="{pts}" fill="none" stroke="{ln.color}" stroke-width="{ln.width}" '
                f'stroke-opacity="{ln.opacity}" stroke-linejoin="round"/>'
            )
    return out


def training_chart(
    loss: Points,
    val_loss: Points = (),
    lr: Points = (),
    throughput: Points = (),
    *,
    width: int = WIDTH,
    title: str = "Training",
    standalone: bool = False,
) -> str:
    """An SVG document (``xmlns`` set, no external references); "" when there is no loss.

    Inline in a page the text takes the page's colour (light and dark themes); ``standalone`` (an image
    file) draws it dark grey on white."""
    raw = _finite(loss)
    if not raw:
        return ""
    val, lrs, tps = _finite(val_loss), _finite(lr), _finite(throughput)
    loss_lines = [
        Line("raw", raw, COLORS["raw"], width=1.0, opacity=0.6),
        Line("smoothed", smooth(raw), COLORS["smooth"], width=2.5),
    ]
    if val:
        loss_lines.append(Line("validation", val, COLORS["val"], markers=True))
    panels = [Panel("Loss", loss_lines, 220, log=True, robust=True)]
    if lrs:
        panels.append(Panel("Learning rate", [Line("lr", lrs, COLORS["lr"])], 110))
    if tps:
        panels.append(Panel("Throughput (samples/s)", [Line("samples/s", smooth(tps), COLORS["throughput"])], 110))
    return panels_svg(panels, title=title, width=width, standalone=standalone)


def panels_svg(panels: Sequence[Panel], *, title: str, width: int = WIDTH, standalone: bool = False) -> str:
    """Stacked panels sharing one step axis, as an SVG document ("" when no panel has points)."""
    xs = [x for p in panels for ln in p.lines for x, _ in ln.points]
    if not xs:
        return ""
    x0, x1 = min(xs), max(xs)
    gap = 16
    body: list[str] = []
    top = 8.0
    for p in panels:
        body += _panel(p, top, x0, x1, width)
        top += p.height + gap
    axis_y = top - gap
    x_ticks = nice_ticks(x0, x1, 6, integer=True)
    for t, text in zip(x_ticks, labels(x_ticks), strict=True):
        x = LEFT + (t - x0) / ((x1 - x0) or 1) * (width - RIGHT - LEFT)
        body.append(f'<text x="{x:.1f}" y="{axis_y + 16:.1f}" text-anchor="middle">{escape(text)}</text>')
    body.append(f'<text x="{width - RIGHT}" y="{axis_y + 32:.1f}" text-anchor="end">step</text>')
    height = math.ceil(axis_y + 40)
    style = (
        f"text{{font-family:'DejaVu Sans',Verdana,Arial,sans-serif;font-size:{FONT_PX}px;fill:currentColor}}"
        ".grid{stroke:currentColor;stroke-opacity:.12}.frame{fill:none;stroke:currentColor;stroke-opacity:.4}"
    )
    look = "color:#333;background:#fff;" if standalone else ""
    backdrop = f'<rect width="{width}" height="{height}" fill="#fff"/>' if standalone else ""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" data-traindoc="chart" style="{look}max-width:100%;height:auto">'
        f"<title>{escape(title)}</title><style>{style}</style>{backdrop}" + "".join(body) + "</svg>"
    )

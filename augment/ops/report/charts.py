"""Inline SVG charts for the report: horizontal bars and 100 % stacked bars. No JavaScript, no external files.

Each function returns an `<svg>` element as a string, sized in CSS pixels and scaling down with its container
(viewBox + width 100 %). Labels are escaped here; colours come from the caller (the stylesheet's palette).
"""
from __future__ import annotations

import html
from typing import Sequence

ROW = 26  # px per bar row
LABEL_W = 172  # px for the row labels on the left
VALUE_W = 160  # px for the value text on the right
LABEL_CHARS = 25  # longer labels are cut, the full label stays in the tooltip
WIDTH = 600  # px: fits half of the overview page; narrower containers scale the chart down


def hbar(items: Sequence[tuple[str, float, str]], colour: str = "#4f6bed", width: int = WIDTH) -> str:
    """One bar per (label, value, value text), longest bar = full width."""
    if not items:
        return ""
    top = max(value for _, value, _ in items) or 1.0
    plot = width - LABEL_W - VALUE_W
    height = ROW * len(items) + 4
    parts = [_open(width, height)]
    for i, (label, value, text) in enumerate(items):
        y = i * ROW + 4
        bar = max(1.0, plot * value / top) if value > 0 else 0.0
        parts.append(_label(label, y))
        parts.append(f'<rect x="{LABEL_W}" y="{y}" width="{plot}" height="{ROW - 8}" rx="3" fill="#eef0f5"/>')
        if bar:
            parts.append(f'<rect x="{LABEL_W}" y="{y}" width="{bar:.1f}" height="{ROW - 8}" rx="3" fill="{colour}">'
                         f'<title>{html.escape(label)}: {html.escape(text)}</title></rect>')
        parts.append(f'<text x="{LABEL_W + plot + 8}" y="{y + (ROW - 8) / 2}" class="value">{html.escape(text)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def stacked(rows: Sequence[tuple[str, Sequence[tuple[str, float]], str]], colours: dict[str, str], width: int = WIDTH) -> str:
    """One 100 % bar per (label, [(part, value), ...], value text), parts coloured by name, plus a legend."""
    if not rows:
        return ""
    plot = width - LABEL_W - VALUE_W
    legend_h = 22
    height = ROW * len(rows) + legend_h + 4
    parts = [_open(width, height)]
    for i, (label, values, text) in enumerate(rows):
        y = i * ROW + 4
        total = sum(v for _, v in values) or 1.0
        x = float(LABEL_W)
        parts.append(_label(label, y))
        parts.append(f'<rect x="{LABEL_W}" y="{y}" width="{plot}" height="{ROW - 8}" rx="3" fill="#eef0f5"/>')
        for name, value in values:
            if value <= 0:
                continue
            w = plot * value / total
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{ROW - 8}" fill="{colours.get(name, "#999")}">'
                         f'<title>{html.escape(label)} {html.escape(name)}: {value:g} ({100 * value / total:.1f} %)</title></rect>')
            x += w
        parts.append(f'<text x="{LABEL_W + plot + 8}" y="{y + (ROW - 8) / 2}" class="value">{html.escape(text)}</text>')
    x = float(LABEL_W)
    y = ROW * len(rows) + 8
    for name, colour in colours.items():
        parts.append(f'<rect x="{x:.0f}" y="{y}" width="12" height="12" rx="2" fill="{colour}"/>'
                     f'<text x="{x + 17:.0f}" y="{y + 6}" class="legend">{html.escape(name)}</text>')
        x += 24 + 7.5 * len(name) + 12
    parts.append("</svg>")
    return "".join(parts)


def _open(width: int, height: int) -> str:
    return (f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'xmlns="http://www.w3.org/2000/svg" role="img">')


def _label(label: str, y: float) -> str:
    short = label if len(label) <= LABEL_CHARS else label[:LABEL_CHARS - 1] + "…"
    return (f'<text x="{LABEL_W - 8}" y="{y + (ROW - 8) / 2}" class="label" text-anchor="end">'
            f'<title>{html.escape(label)}</title>{html.escape(short)}</text>')


def lines(x: Sequence[float], series: Sequence[tuple[str, Sequence[float]]], colours: Sequence[str],
          y_min: float | None = None, y_max: float | None = None, width: int = WIDTH, height: int = 260) -> str:
    """A line chart: one polyline per (name, values) over the shared x values, with axes, ticks and a legend.
    y_min / y_max widen the value range to include them (e.g. 0 and a known maximum)."""
    values = [v for _, ys in series for v in ys]
    if not x or not values:
        return ""
    low = min(values + ([y_min] if y_min is not None else []))
    high = max(values + ([y_max] if y_max is not None else []))
    if high - low < 1e-12:
        high = low + 1.0
    left, right, top = 48, 12, 10
    legend_rows = (len(series) + 1) // 2
    plot_h = height - top - 28 - 18 * legend_rows
    plot_w = width - left - right
    x_low, x_high = min(x), max(x)
    sx = lambda v: left + (plot_w * (v - x_low) / (x_high - x_low) if x_high > x_low else plot_w / 2)  # noqa: E731
    sy = lambda v: top + plot_h * (1 - (v - low) / (high - low))  # noqa: E731
    parts = [_open(width, height)]
    for i in range(5):  # horizontal grid lines and value ticks
        v = low + (high - low) * i / 4
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(v):.1f}" y2="{sy(v):.1f}" stroke="#eef0f5"/>'
                     f'<text x="{left - 6}" y="{sy(v):.1f}" class="axis" text-anchor="end">{v:.2f}</text>')
    step = max(1, len(x) // 10)
    for v in list(x)[::step]:
        parts.append(f'<text x="{sx(v):.1f}" y="{top + plot_h + 12}" class="axis" text-anchor="middle">{v:g}</text>')
    for i, (name, ys) in enumerate(series):
        colour = colours[i % len(colours)]
        points = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in zip(x, ys))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2">'
                     f'<title>{html.escape(name)}</title></polyline>')
        lx = left + (i % 2) * plot_w / 2
        ly = top + plot_h + 30 + 18 * (i // 2)
        parts.append(f'<rect x="{lx:.0f}" y="{ly - 5}" width="12" height="4" fill="{colour}"/>'
                     f'<text x="{lx + 17:.0f}" y="{ly - 3}" class="legend">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)

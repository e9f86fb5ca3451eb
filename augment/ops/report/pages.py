"""What every report page shares: the views pages are built from, escaping, the page frame, number formats.

Pure string building; every value from the data is escaped with `e`. No I/O, no JavaScript, no external
resources: pages link one stylesheet and thumbnails beside them.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import html
from typing import Any

from augment.ops.report.collect import RunFacts

@dataclasses.dataclass
class VariantView:
    kind: str
    thumb: str | None  # path relative to the report folder
    status: str  # ok | filtered | failed:<reason> | missing
    score: float | None
    prompt: str | None
    model: str | None
    size: str | None  # "512×512"


@dataclasses.dataclass
class ProductView:
    anchor: str
    product_id: str
    title_html: str
    enriched_html: str | None
    enrichment: dict[str, Any]
    attributes: list[tuple[str, list[str]]]
    category_path: str | None
    background_prompts: list[str]
    original_thumb: str | None
    variants: list[VariantView]
    page: int = 1


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def page_name(page: int) -> str:
    return f"gallery-{page:03d}.html"


# ------------------------------------------------------------------------------------------------------------
# layout
# ------------------------------------------------------------------------------------------------------------
def layout(title: str, body: str, facts: RunFacts, pages: int, here: str, generated: str) -> str:
    current = ' class="here"'
    nav = [f'<a href="index.html"{current if here == "index" else ""}>Overview</a>']
    if pages:
        nav.append(f'<a href="{page_name(1)}"{current if here.startswith("gallery") else ""}>Gallery</a>')
    run_id = facts.run_info.get("run_id") or ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}</title><link rel=\"stylesheet\" href=\"style.css\"></head><body>"
        f'<header class="top"><div class="logo">moon <span>run report</span></div><nav>{"".join(nav)}</nav>'
        f'<div class="runid mono">{e(run_id)}</div></header>'
        f"<main>{body}</main>"
        f"<footer>{e(generated)}</footer></body></html>"
    )


# ------------------------------------------------------------------------------------------------------------
# formatting
# ------------------------------------------------------------------------------------------------------------
def pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "–"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def when(timestamp: float) -> str:
    """A time of a record (seconds since 1970) as UTC; one that is not such a time (milliseconds, text written by
    another tool) is shown as it is, instead of failing the page."""
    try:
        return dt.datetime.fromtimestamp(float(timestamp), dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, ValueError, OSError, TypeError):
        return f"{str(timestamp)[:40]} (not a time in seconds since 1970)"

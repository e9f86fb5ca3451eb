"""The report's HTML pages: the overview (figures, charts, quarantine examples) and the gallery pages.

Pure string building from prepared views (`ProductView`, `RunFacts`); every value from the data is escaped
here. No I/O, no JavaScript, no external resources: pages link one stylesheet and thumbnails beside them.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import html
from typing import Any, Sequence

from augment.report import charts
from augment.report.collect import RunFacts
from augment.schema import VARIANT_KINDS
from augment.stages import STAGE_ORDER

STATUS_COLOURS = {"ok": "#1f9d63", "filtered": "#d98e04", "failed": "#d64545"}
ROWS_COLOURS = {"written": "#4f6bed", "quarantined": "#d64545"}
ENTITY_LABELS = ("BRAND", "CATEGORY", "MATERIAL", "COLOR")


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
# overview
# ------------------------------------------------------------------------------------------------------------
def overview(facts: RunFacts, quarantine: Sequence[dict], mosaic: Sequence[ProductView], sample_size: int,
             pages: int, enrichment_counts: dict[str, int]) -> str:
    t = facts.totals
    info = facts.run_info
    created = info.get("created_at")
    sub = [f"run folder <code>{e(facts.run_uri)}</code>"]
    if info.get("config_hash"):
        sub.append(f"config <code>{e(info['config_hash'])}</code>")
    if info.get("code_version"):
        sub.append(f"code <code>{e(info['code_version'])}</code>")
    if created:
        sub.append(f"started {e(_when(created))}")
    parts = [
        f"<h1>Run {e(info.get('run_id') or facts.run_uri)}</h1>",
        f'<div class="sub">{" · ".join(sub)}</div>',
        _kpis(facts),
        '<div class="grid2">',
        _panel("Rows", _rows_chart(t)),
        _panel("Quarantined by reason", _reasons_chart(t)),
        _panel("Time per stage", _stage_chart(t), "Seconds of stage work summed over all workers; "
               "the share is of the total, the last figure per product."),
        _panel("Image variants by kind", _variants_chart(t)),
        "</div>",
        _panel(f"Gallery: {sample_size:,} of {t['rows_out']:,} written products", _mosaic(mosaic, pages, sample_size, t)),
        _panel("Quarantined examples", _quarantine_table(quarantine, t)),
        _panel("Title enrichment (sample)", _enrichment_chart(enrichment_counts)),
    ]
    return "".join(parts)


def _kpis(facts: RunFacts) -> str:
    t = facts.totals
    share = t["rows_quarantined"] / t["rows_in"] if t["rows_in"] else 0.0
    pps = facts.products_per_second
    elapsed = facts.elapsed_seconds
    statuses = {k: v for k, v in t["variant_status"].items() if ":" not in k}
    variants = sum(statuses.values())
    cards = [
        ("Products in", f"{t['rows_in']:,}", f"{t['shards']:,} shards", ""),
        ("Written", f"{t['rows_out']:,}", f"{_pct(t['rows_out'], t['rows_in'])} of input", "good"),
        ("Quarantined", f"{t['rows_quarantined']:,}", f"{100 * share:.1f} % · {len(t['quarantine_reasons'])} reasons",
         "warn" if t["rows_quarantined"] else ""),
        ("Products / s", f"{pps:,.2f}" if pps else "–", f"over {_duration(elapsed)}" if elapsed else "no timing", ""),
        ("Variants", f"{variants:,}", f"{_pct(statuses.get('filtered', 0), variants)} filtered" if variants else "none", ""),
        ("Output size", _bytes(t["bytes"]), "data + quarantine shards", ""),
    ]
    return '<div class="kpis">' + "".join(
        f'<div class="kpi {cls}"><div class="k">{e(k)}</div><div class="v">{e(v)}</div><div class="d">{e(d)}</div></div>'
        for k, v, d, cls in cards) + "</div>"


def _panel(title: str, body: str, note: str = "") -> str:
    note_html = f'<p class="note">{e(note)}</p>' if note else ""
    return f'<section class="panel"><h2>{e(title)}</h2>{body}{note_html}</section>'


def _rows_chart(t: dict) -> str:
    rows = [("all products", [("written", t["rows_out"]), ("quarantined", t["rows_quarantined"])],
             f"{t['rows_out']:,} + {t['rows_quarantined']:,}")]
    return charts.stacked(rows, ROWS_COLOURS) + (
        f'<p class="note">rows in {t["rows_in"]:,} = written {t["rows_out"]:,} + quarantined {t["rows_quarantined"]:,}</p>')


def _reasons_chart(t: dict) -> str:
    reasons = sorted(t["quarantine_reasons"].items(), key=lambda kv: (-kv[1], kv[0]))
    if not reasons:
        return '<p class="empty">No product was quarantined.</p>'
    return charts.hbar([(r, n, f"{n:,} ({_pct(n, t['rows_in'])})") for r, n in reasons], colour="#d64545")


def _stage_chart(t: dict) -> str:
    timings = t["timings"]
    if not timings:
        return '<p class="empty">No stage timings recorded.</p>'
    total = sum(timings.values()) or 1.0
    n = max(1, t["rows_in"])
    order = [*STAGE_ORDER, "write"]
    ranked = sorted(timings.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0]))
    items = [(stage, s, f"{_duration(s)} · {100 * s / total:.0f} % · {_duration(s / n)}") for stage, s in ranked]
    return charts.hbar(items)


def _variants_chart(t: dict) -> str:
    counts = t["variant_status"]
    rows = []
    for kind in VARIANT_KINDS:
        parts = [(status, counts.get(f"{kind}:{status}", 0)) for status in STATUS_COLOURS]
        total = sum(v for _, v in parts)
        if total:
            rows.append((kind, parts, f"{_pct(parts[1][1], total)} filtered"))
    if not rows:
        return '<p class="empty">No image variants in this run (the image_variants stage did not run).</p>'
    return charts.stacked(rows, STATUS_COLOURS)


def _enrichment_chart(counts: dict[str, int]) -> str:
    if not counts:
        return '<p class="empty">No enriched titles in the sample.</p>'
    total = sum(counts.values())
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return charts.hbar([(status, n, f"{n:,} ({_pct(n, total)})") for status, n in items], colour="#7a5af8")


def _quarantine_table(rows: Sequence[dict], t: dict) -> str:
    if not rows:
        return '<p class="empty">No product was quarantined.</p>'
    rank = {reason: i for i, (reason, _) in enumerate(sorted(t["quarantine_reasons"].items(), key=lambda kv: (-kv[1], kv[0])))}
    body = []
    for row in sorted(rows, key=lambda r: rank.get(r.get("reason"), len(rank))):
        lineage = row.get("lineage") or {}
        if (row.get("title") or "").strip():
            title = e(row["title"])
        else:
            title = f'<span class="raw">{e(row.get("raw_preview") or "(blank)")}</span>'
        shard = lineage.get("shard_id") or ""
        where = f'<span title="{e(shard)}">{e(shard[:8])}</span>:{e(lineage.get("source_row"))}' if lineage else ""
        body.append(
            f'<tr><td><span class="badge reason">{e(row.get("reason"))}</span></td><td>{e(row.get("stage"))}</td>'
            f'<td class="mono">{e(row.get("product_id") or "–")}</td><td>{title}</td>'
            f'<td class="detail">{e(row.get("detail"))}</td><td class="mono">{where}</td></tr>')
    note = f'<p class="note">Up to 3 examples per reason out of {t["rows_quarantined"]:,} quarantined rows; ' \
           f'all of them are in <code>quarantine/</code>.</p>'
    cols = "".join(f'<col class="{c}">' for c in ("reason", "stage", "product", "title", "detail", "where"))
    return (f'<table class="quarantine"><colgroup>{cols}</colgroup><thead><tr><th>reason</th><th>stage</th><th>product</th><th>title</th><th>detail</th>'
            f'<th>shard:row</th></tr></thead><tbody>{"".join(body)}</tbody></table>{note}')


def _mosaic(views: Sequence[ProductView], pages: int, sample_size: int, t: dict) -> str:
    if not views:
        return '<p class="empty">No written products to show.</p>'
    tiles = "".join(
        f'<a href="{page_name(v.page)}#{e(v.anchor)}" title="{e(v.product_id)}">'
        + (f'<img src="{e(v.original_thumb)}" alt="" loading="lazy">' if v.original_thumb else "")
        + "</a>" for v in views)
    chosen = "every written product" if sample_size >= t["rows_out"] else \
        "a deterministic sample (the products with the smallest hash of their id), the same on every regeneration"
    return (f'<div class="mosaic">{tiles}</div>'
            f'<p class="note">{e(chosen.capitalize())}; {pages} page{"s" if pages != 1 else ""}. '
            f'<a href="{page_name(1)}">Open the gallery →</a></p>')


# ------------------------------------------------------------------------------------------------------------
# gallery
# ------------------------------------------------------------------------------------------------------------
def gallery(views: Sequence[ProductView], page: int, pages: int, first_index: int, sample_size: int) -> str:
    pager = _pager(page, pages, first_index, len(views), sample_size)
    legend = '<div class="legend-row">Entities: ' + "".join(
        f'<mark class="ent ent-{label.lower()}">{label.lower()}</mark>' for label in ENTITY_LABELS) + \
        ' &nbsp; Variants: <span class="badge ok">ok</span><span class="badge filtered">filtered</span>' \
        '<span class="badge failed">failed</span></div>'
    cards = "".join(product_card(v) for v in views)
    return f"<h1>Gallery</h1>{pager}{legend}<div style=\"height:14px\"></div>{cards}{pager}"


def product_card(v: ProductView) -> str:
    original = f'<img src="{e(v.original_thumb)}" alt="{e(v.product_id)}" loading="lazy">' if v.original_thumb \
        else '<div class="noimg">image not available</div>'
    attrs = " · ".join(f'{e(k)}: {e(", ".join(vals))}' for k, vals in v.attributes if vals)
    enrichment = v.enrichment or {}
    status = enrichment.get("status") or ""
    badge = f'<span class="badge {e(status.split(":", 1)[0])}">{e(status)}</span>' if status else ""
    source = " · ".join(str(x) for x in (enrichment.get("backend"), enrichment.get("model")) if x)
    enriched = (f'<div class="field"><div class="k">Enriched title <span class="how">{badge} {e(source)}</span></div>'
                f'<div class="t enriched">{v.enriched_html}</div></div>') if v.enriched_html is not None else ""
    prompts = ""
    if v.background_prompts:
        items = "".join(f"<li>{e(p)}</li>" for p in v.background_prompts)
        prompts = f"<details><summary>{len(v.background_prompts)} background prompts</summary><ol>{items}</ol></details>"
    variants = f'<div class="variants">{"".join(_variant(x) for x in v.variants)}</div>' if v.variants else ""
    return (
        f'<article class="product" id="{e(v.anchor)}">'
        f'<div class="original"><div class="frame">{original}</div><div class="pid mono">{e(v.product_id)}</div>'
        f'<div class="cat">{e(v.category_path or "")}</div></div>'
        f'<div class="text"><div class="field"><div class="k">Title</div><div class="t">{v.title_html}</div></div>'
        f'{enriched}<div class="field note">{attrs}</div>{prompts}</div>'
        f'{variants}</article>'
    )


def _variant(v: VariantView) -> str:
    bucket = (v.status or "missing").split(":", 1)[0]
    tip = " · ".join(x for x in (v.kind, v.size, v.model, v.prompt) if x)
    if v.thumb:
        frame = f'<img src="{e(v.thumb)}" alt="{e(v.kind)}" loading="lazy">'
    elif bucket == "failed":
        frame = e(v.status)
    else:
        frame = '<div class="noimg">no image</div>'
    score = f"{v.score:.2f}" if v.score is not None else "–"
    width = 100 * max(0.0, min(1.0, v.score)) if v.score is not None else 0.0
    label = "failed" if bucket == "failed" else bucket
    return (f'<figure class="variant {e(bucket)}" title="{e(tip)}"><div class="frame">{frame}</div>'
            f'<figcaption><div class="cap"><span class="kind">{e(v.kind)}</span>'
            f'<span class="badge {e(bucket)}">{e(label)}</span></div>'
            f'<div class="cap"><span class="meter"><span style="width:{width:.0f}%"></span></span>'
            f'<span class="mono score">{score}</span></div></figcaption></figure>')


def _pager(page: int, pages: int, first_index: int, count: int, sample_size: int) -> str:
    if pages <= 1:
        return f'<div class="pager"><span class="info">{count:,} products</span></div>'
    links = []
    if page > 1:
        links.append(f'<a href="{page_name(page - 1)}">‹ prev</a>')
    last = 0
    for p in _page_numbers(page, pages):
        if p - last > 1:
            links.append('<span class="gap">…</span>')
        links.append(f'<span class="here">{p}</span>' if p == page else f'<a href="{page_name(p)}">{p}</a>')
        last = p
    if page < pages:
        links.append(f'<a href="{page_name(page + 1)}">next ›</a>')
    links.append(f'<span class="info">products {first_index + 1:,}–{first_index + count:,} of {sample_size:,}</span>')
    return f'<div class="pager">{"".join(links)}</div>'


def _page_numbers(page: int, pages: int) -> list[int]:
    """First, last, and the pages around the current one."""
    return sorted({1, pages, *range(max(1, page - 2), min(pages, page + 2) + 1)})


# ------------------------------------------------------------------------------------------------------------
# formatting
# ------------------------------------------------------------------------------------------------------------
def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "–"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def _when(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(float(timestamp), dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

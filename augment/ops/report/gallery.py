"""Gallery pages (`gallery-NNN.html`): one card per sampled product with its titles, entities and variants."""
from __future__ import annotations

from typing import Sequence

import ner
from augment.ops.report.pages import ProductView, VariantView, e, page_name


def render(views: Sequence[ProductView], page: int, pages: int, first_index: int, sample_size: int) -> str:
    pager = _pager(page, pages, first_index, len(views), sample_size)
    legend = '<div class="legend-row">Entities: ' + "".join(
        f'<mark class="ent ent-{label.lower()}">{label.lower()}</mark>' for label in ner.LABELS) + \
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



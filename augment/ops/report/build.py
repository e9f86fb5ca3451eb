"""`write_report(run_uri)`: render `report/` for a run folder, local or s3://.

1. read the run facts (manifest, _run.json) and a deterministic sample of products;
2. write thumbnails of the sampled products' images and variants as files under `report/img/`;
3. write the gallery pages (`gallery-001.html`, ...) and the overview `index.html` last, so a present index
   means a complete report; remove pages and thumbnails an earlier, larger report left behind.
The report's size is bounded by `sample_size` whatever the size of the run: pages hold text and links only.
"""
from __future__ import annotations

import concurrent.futures
import datetime as dt
import logging
import os
from collections import Counter
from importlib import resources
from typing import Any

from augment.core import manifest, storage
from augment.ops.report import collect, gallery, highlight, overview, pages
from augment.ops.report.thumbs import Thumbnailer
from augment.core.schema import VARIANT_KINDS
from augment.core.util import code_version
from augment.imaging import untrusted

log = logging.getLogger(__name__)
SAMPLE_SIZE = 240
PAGE_SIZE = 24
ORIGINAL_SIDE = 320  # px; shown at 190 CSS px, sharp on high-density screens
VARIANT_SIDE = 240  # px; shown at 138 CSS px
MOSAIC_TILES = 24
THUMB_THREADS = 8
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8"}


def write_report(run_uri: str, sample_size: int = SAMPLE_SIZE, page_size: int = PAGE_SIZE) -> str:
    """Write the run's report under `<run_uri>/report/` and return the URI of its index.html."""
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, got {page_size}")
    report_uri = storage.join(run_uri, manifest.REPORT_DIR)
    facts = collect.load_run(run_uri)
    # One report of a local run folder at a time (`moon report` beside the rewrite `moon eval` or a run ends with):
    # each removes the pages and thumbnails its own report does not use, which were the other's.
    with storage.exclusive(report_uri):
        return _write_report(facts, report_uri, sample_size, page_size)


def _write_report(facts: collect.RunFacts, report_uri: str, sample_size: int, page_size: int) -> str:
    run_uri = facts.run_uri
    # 1. the sample
    rows = collect.sample_products(facts, sample_size)
    quarantine = collect.quarantine_examples(facts)
    # 2. thumbnails and product views
    thumbs = Thumbnailer(report_uri)
    with concurrent.futures.ThreadPoolExecutor(max_workers=THUMB_THREADS) as pool:  # decoding and I/O overlap
        views = list(pool.map(lambda item: product_view(item[1], thumbs, page=1 + item[0] // page_size), enumerate(rows)))
    page_count = (len(views) + page_size - 1) // page_size
    generated = (f"moon-augment {code_version()} · schema {facts.run_info.get('schema_version', '?')} · "
                 f"generated {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    # 3. pages, the index last
    _write(storage.join(report_uri, "style.css"), resources.files("augment.ops.report").joinpath("style.css").read_bytes())
    for page in range(1, page_count + 1):
        chunk = views[(page - 1) * page_size: page * page_size]
        body = gallery.render(chunk, page, page_count, (page - 1) * page_size, len(views))
        html = pages.layout(f"Gallery {page}/{page_count} · {_run_name(facts)}", body, facts, page_count,
                            "gallery", generated)
        _write(storage.join(report_uri, pages.page_name(page)), html.encode())
    body = overview.render(facts, quarantine, views[:MOSAIC_TILES], len(views), page_count, _enrichment_counts(rows),
                           evaluation=collect.latest_evaluation(run_uri), report_uri=report_uri)
    index = storage.join(report_uri, "index.html")
    _write(index, pages.layout(f"Run report · {_run_name(facts)}", body, facts, page_count, "index", generated).encode())
    _prune_pages(report_uri, page_count)
    thumbs.prune()
    log.info("report: %d of %d products on %d pages -> %s", len(views), facts.totals["rows_out"], page_count, index)
    return index


def product_view(row: dict[str, Any], thumbs: Thumbnailer, page: int) -> pages.ProductView:
    """Everything a product card shows, with its thumbnails written."""
    title = row.get("title") or ""
    entities = row.get("entities") or []
    enriched = row.get("enriched_title")
    original = thumbs.from_bytes(row.get("image"), ORIGINAL_SIDE) or thumbs.from_uri(_original_uri(row), ORIGINAL_SIDE)
    variants = []
    for v in sorted(row.get("variants") or [], key=_variant_order):
        thumb = thumbs.from_bytes(v.get("image"), VARIANT_SIDE) or thumbs.from_uri(v.get("uri"), VARIANT_SIDE)
        size = f"{v['width']}×{v['height']}" if v.get("width") and v.get("height") else None
        variants.append(pages.VariantView(kind=v.get("kind") or "?", thumb=thumb, status=v.get("status") or "missing",
                                          score=v.get("score"), prompt=v.get("prompt"), model=v.get("model"), size=size))
    return pages.ProductView(
        anchor="p-" + collect.sample_key(row["product_id"]),
        product_id=row["product_id"],
        title_html=highlight.to_html(highlight.title_segments(title, entities)),
        enriched_html=highlight.to_html(highlight.occurrence_segments(enriched, entities)) if enriched else None,
        enrichment=row.get("enrichment") or {},
        attributes=[(name, row.get(name) or []) for name in ("brand", "category", "material", "color")],
        category_path=row.get("category_path"),
        background_prompts=list(row.get("background_prompts") or []),
        original_thumb=original,
        variants=variants,
        page=page,
    )


def _variant_order(variant: dict) -> int:
    kind = variant.get("kind")
    return VARIANT_KINDS.index(kind) if kind in VARIANT_KINDS else len(VARIANT_KINDS)


def _original_uri(row: dict[str, Any]) -> str | None:
    """The catalogue's image, where the validate stage read it (untrusted.image_address): a relative URI against
    the input file it came from; None for an address validate refuses."""
    uri = row.get("image_uri")
    if not uri:
        return None
    try:
        return untrusted.image_address(uri, (row.get("lineage") or {}).get("source_uri") or "")
    except untrusted.ImageRejected:
        return None


def _enrichment_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    counts: Counter = Counter()
    for row in rows:
        status = (row.get("enrichment") or {}).get("status")
        if status:
            counts[status] += 1
    return dict(counts)


def _run_name(facts: collect.RunFacts) -> str:
    return facts.run_info.get("run_id") or facts.run_uri


def _write(uri: str, data: bytes) -> None:
    storage.write_atomic(uri, data, content_type=CONTENT_TYPES.get(os.path.splitext(uri)[1]))


def _prune_pages(report_uri: str, page_count: int) -> None:
    keep = {pages.page_name(p) for p in range(1, page_count + 1)}
    for uri in storage.list_files(report_uri, ".html"):
        name = uri.rsplit("/", 1)[-1]
        if name.startswith("gallery-") and name not in keep:
            storage.delete(uri)

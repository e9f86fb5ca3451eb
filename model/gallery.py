"""Retrieval galleries: what a model ranks at 1, 10 and 50 for sample queries of every direction, two models
side by side (the paper's Figures 8-10), as static HTML beside the evaluation's JSON.

1. Queries: per direction (t->mm, i->mm, mm->mm, t->i, i->t) the `per_direction` queries with the smallest
   hash of (direction, query): the attribute query's text, or the product id of a per-product query. The
   same queries on every run and for every model, whatever the catalogue's order.
2. Rankings: each model embeds the evaluation's queries and candidates (`model.evaluate`, the evaluated
   products, held-out by default: the same protocol as the recall table) and ranks every candidate for each
   sampled query.
3. Pages: `<results stem>-gallery.html` (the index: directions, queries, each model's figures) beside the JSON,
   and `<results stem>-gallery/<direction>-<n>.html`, `page_size` queries a page. Each query shows its text
   and/or re-framed photo and, per model, the candidates at ranks 1, 10 and 50 and its first relevant
   candidate, each with a thumbnail and its title; relevant candidates are marked. Thumbnails are small JPEGs
   embedded in the page (data URIs): no page refers to a full-size image or another file.
"""
from __future__ import annotations

import base64
import dataclasses
import html
from pathlib import Path
from typing import Any, Sequence

import torch

from model.evaluate import DIRECTIONS, embed_views, evaluation_inputs, text_queries

RANKS = (1, 10, 50)
THUMB = 128  # px, the longest side of an embedded thumbnail
PAGE_SIZE = 6
CANDIDATE_VIEW = {"c_mm": "title + image", "c_i": "image", "c_t": "title"}


@dataclasses.dataclass
class Tile:
    rank: int
    product_id: str
    title: str
    score: float
    relevant: bool
    thumb: str  # data URI


def slug(direction: str) -> str:
    return direction.replace("->", "-")


def sample_queries(direction: str, keys: Sequence[str], count: int) -> list[int]:
    """Indices of the `count` queries of a direction with the smallest stable hash, in that order."""
    from augment.core.util import stable_hash

    order = sorted(range(len(keys)), key=lambda i: stable_hash("gallery", direction, keys[i], length=16))
    return order[:count]


def thumbnail(data: bytes | None, side: int = THUMB) -> str:
    """A JPEG data URI of at most `side` px, or "" when the bytes are not a usable image."""
    from augment.imaging import codec, untrusted

    if not data:
        return ""
    try:
        image = untrusted.normalise(data, max_pixels=80_000_000, min_side=1, max_side=side)
    except untrusted.ImageRejected:
        return ""
    return "data:image/jpeg;base64," + base64.b64encode(codec.encode(image, "jpeg", 80)).decode()


def _pil_thumbnail(image) -> str:
    import io

    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=80)
    return thumbnail(buffer.getvalue())


def write_gallery(results_path: str | Path, models: Sequence[tuple], data, records: Sequence[dict[str, Any]],
                  per_direction: int = 12, page_size: int = PAGE_SIZE) -> Path:
    """Write the gallery of `models` ((checkpoint path, model, config), the first two side by side) over the
    evaluation's `records`; returns the index page's path."""
    from model import images as image_ops
    from model.data import product_rng

    results_path = Path(results_path)
    folder = results_path.parent / f"{results_path.stem}-gallery"
    folder.mkdir(parents=True, exist_ok=True)
    queries = text_queries(records, data)
    columns = []
    for path, model, cfg in models[:2]:
        cfg = dataclasses.replace(cfg, data=data)
        inputs = evaluation_inputs(records, cfg)
        columns.append(("/".join(Path(path).parts[-2:]), embed_views(model, cfg, inputs)))
    thumbs: dict[int, str] = {}

    def product_thumb(i: int) -> str:  # only the products a page shows, each made once
        if i not in thumbs:
            thumbs[i] = thumbnail(records[i]["image"])
        return thumbs[i]

    directions = []
    for direction, (q_view, c_view) in DIRECTIONS.items():
        per_product = q_view != "q_t"
        keys = [r["product_id"] for r in records] if per_product else queries.texts
        chosen = sample_queries(direction, keys, per_direction)
        cards, hits = [], [0] * len(columns)
        for number, qi in enumerate(chosen, start=1):
            relevant = (torch.arange(len(records)) == qi) if per_product else queries.relevant[qi]
            record = records[qi] if per_product else None
            text = None
            if q_view in ("q_t", "q_mm"):
                text = queries.texts[qi] if q_view == "q_t" else _product_query_text(record, data)
            photo = ""
            if q_view in ("q_i", "q_mm"):
                photo = _pil_thumbnail(image_ops.query_view(image_ops.decode(record["image"]), 2 * THUMB,
                                                            product_rng(record["product_id"], "query-image")))
            ranked = []
            for m, (_, embeddings) in enumerate(columns):
                scores = embeddings[q_view][qi] @ embeddings[c_view].T  # [C]
                ranked.append(_tiles(scores, relevant, records, product_thumb))
                hits[m] += ranked[-1]["first"] is not None and ranked[-1]["first"].rank <= 10
            cards.append(_card(direction, number, text, photo, record, int(relevant.sum()), ranked, c_view))
        directions.append((direction, cards, len(keys), hits))

    names = [name for name, _ in columns]
    nav = _nav(results_path.stem, [(d, len(cards)) for d, cards, _, _ in directions])
    written = set()
    for direction, cards, _, _ in directions:
        pages = max(1, -(-len(cards) // page_size))
        for page in range(1, pages + 1):
            body = (f"<h1>{html.escape(direction)} · page {page} of {pages}</h1>"
                    f"{_legend(names, DIRECTIONS[direction][1])}"
                    + "".join(cards[(page - 1) * page_size: page * page_size])
                    + _pager(direction, page, pages))
            (folder / f"{slug(direction)}-{page}.html").write_text(_page(f"{direction} gallery", nav("../"), body))
            written.add(f"{slug(direction)}-{page}.html")
    for stale in folder.glob("*.html"):  # pages of an earlier, longer gallery
        if stale.name not in written:
            stale.unlink()
    index = results_path.parent / f"{results_path.stem}-gallery.html"
    index.write_text(_page("Retrieval gallery", nav(f"{folder.name}/"), _index_body(
        names, directions, len(records), data, folder.name, page_size)))
    return index


def _product_query_text(record, data) -> str:
    from model.evaluate import product_query_text

    return product_query_text(record, data)


def _tiles(scores: torch.Tensor, relevant: torch.Tensor, records, thumb) -> dict[str, Any]:
    """Ranks 1, 10, 50 and the first relevant candidate of one query for one model; ties keep gallery order."""
    order = torch.sort(scores, descending=True, stable=True).indices
    position = torch.empty_like(order)
    position[order] = torch.arange(len(order))
    tile = lambda i: Tile(int(position[i]) + 1, records[i]["product_id"], records[i]["title"],  # noqa: E731
                          float(scores[i]), bool(relevant[i]), thumb(i))
    shown = [tile(int(order[r - 1])) for r in RANKS if r <= len(order)]
    first = None
    if relevant.any():
        best = int(position[relevant].min())
        first = tile(int(order[best]))
    return {"shown": shown, "first": first}


def _card(direction, number, text, photo, record, relevant_count, ranked, c_view) -> str:
    query = []
    if photo:
        query.append(f'<img class="qimg" src="{photo}" alt="query photo">')
    if text is not None:
        query.append(f'<div class="qtext">“{html.escape(text)}”</div>' if text else
                     '<div class="qtext empty">(no text: the product has no labels)</div>')
    if record is not None:
        what = f'its product <span class="mono">{html.escape(record["product_id"])}</span>'
    else:
        what = f"{relevant_count} relevant product{'s' if relevant_count != 1 else ''}"
    columns = []
    for result in ranked:
        first = result["first"]
        tiles = "".join(_tile(t) for t in result["shown"])
        if first is not None and first.rank not in [t.rank for t in result["shown"]]:
            tiles += _tile(first, "first relevant")
        found = (f'first relevant at rank <b>{first.rank}</b>' if first else "no relevant candidate")
        hit = "hit" if first is not None and first.rank <= 10 else "miss"
        columns.append(f'<div class="model"><div class="found {hit}">{found}</div><div class="tiles">{tiles}</div></div>')
    key = html.escape(record["product_id"] if record is not None else text or "")
    return (f'<article class="query" data-direction="{html.escape(direction)}" data-query="{key}">'
            f'<div class="q"><div class="qn">{html.escape(direction)} #{number}</div>{"".join(query)}'
            f'<div class="qrel">{what}</div></div><div class="models">{"".join(columns)}</div></article>')


def _tile(t: Tile, note: str = "") -> str:
    mark = '<span class="rel">✓ relevant</span>' if t.relevant else ""
    image = f'<img src="{t.thumb}" alt="">' if t.thumb else '<div class="noimg">no image</div>'
    note_html = f'<div class="tnote">{html.escape(note)}</div>' if note else ""
    return (f'<figure class="tile{" relevant" if t.relevant else ""}" data-rank="{t.rank}" '
            f'data-product="{html.escape(t.product_id)}" data-relevant="{int(t.relevant)}">'
            f'<div class="frame">{image}</div><figcaption><div class="cap"><b>rank {t.rank}</b>'
            f'<span class="mono">{t.score:.3f}</span></div>{note_html}{mark}'
            f'<div class="title">{html.escape(t.title)}</div></figcaption></figure>')


def _legend(names: Sequence[str], c_view: str) -> str:
    heads = "".join(f'<div class="model-name">{html.escape(n)}</div>' for n in names)
    return (f'<div class="legend"><div class="q">query</div><div class="models">{heads}</div></div>'
            f'<p class="note">Candidates: the evaluated products as {CANDIDATE_VIEW[c_view]}; ranks 1, 10 and 50, and '
            f'the first relevant candidate when it is elsewhere; relevant candidates are framed green. Scores are '
            f'cosine similarities.</p>')


def _nav(stem: str, directions: Sequence[tuple[str, int]]):
    def render(prefix: str) -> str:
        back = "../" if prefix == "../" else ""
        links = [f'<a href="{back}{html.escape(stem)}-gallery.html">Overview</a>']
        for direction, count in directions:
            if count:
                links.append(f'<a href="{prefix}{slug(direction)}-1.html">{html.escape(direction)}</a>')
        return "".join(links)
    return render


def _pager(direction: str, page: int, pages: int) -> str:
    if pages <= 1:
        return ""
    links = [f'<span class="here">{p}</span>' if p == page else f'<a href="{slug(direction)}-{p}.html">{p}</a>'
             for p in range(1, pages + 1)]
    return f'<div class="pager">{"".join(links)}</div>'


def _index_body(names, directions, products: int, data, folder: str, page_size: int) -> str:
    rows = []
    for direction, cards, total, hits in directions:
        pages = max(1, -(-len(cards) // page_size))
        links = " ".join(f'<a href="{folder}/{slug(direction)}-{p}.html">{p}</a>' for p in range(1, pages + 1))
        found = "".join(f"<td>{h} of {len(cards)}</td>" for h in hits)
        rows.append(f"<tr><td><b>{html.escape(direction)}</b></td><td>{CANDIDATE_VIEW[DIRECTIONS[direction][1]]}</td>"
                    f"<td>{len(cards)} of {total}</td>{found}<td>{links}</td></tr>")
    protocol = ("attribute queries (" + ", ".join(data.query_attributes) + ")" if data.eval_queries == "attributes"
                else f"title queries ({data.query_text})")
    models = " and ".join(f"<b>{html.escape(n)}</b>" for n in names)
    return (f"<h1>Retrieval gallery</h1><p>{models} on {products} evaluated products; text queries: {protocol}. "
            "Sample queries per direction (the same on every run: the smallest hash of the query), each with what "
            "every model ranks at 1, 10 and 50.</p><table><thead><tr><th>direction</th><th>candidates</th>"
            "<th>queries shown</th>" + "".join(f"<th>relevant in the top 10: {html.escape(n)}</th>" for n in names)
            + f"<th>pages</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _page(title: str, nav: str, body: str) -> str:
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
            f'<header class="top"><div class="logo">moon <span>retrieval gallery</span></div><nav>{nav}</nav></header>'
            f"<main>{body}</main></body></html>")


_CSS = """
* { box-sizing: border-box; }
body { margin: 0; background: #f5f6fa; color: #1d2230; font: 14px/1.45 -apple-system, "Segoe UI", Roboto, Arial,
  "DejaVu Sans", sans-serif; }
a { color: #4f6bed; text-decoration: none; }
.mono { font-family: ui-monospace, Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size: 12px; }
.top { background: #161b2e; color: #fff; padding: 0 24px; display: flex; align-items: center; gap: 20px; height: 48px; }
.top .logo { font-weight: 700; } .top .logo span { color: #9fb0ff; font-weight: 500; }
.top nav a { color: #c9d1ee; padding: 5px 9px; border-radius: 6px; } .top nav a:hover { background: #232a44; }
main { max-width: 1360px; margin: 0 auto; padding: 18px 24px 40px; }
h1 { font-size: 20px; margin: 4px 0 10px; }
.note { color: #687086; font-size: 12.5px; }
table { border-collapse: collapse; background: #fff; } th, td { padding: 6px 12px; border-bottom: 1px solid #e3e6ee; text-align: left; }
.legend, article.query { display: grid; grid-template-columns: 200px 1fr; gap: 16px; }
.legend .models, article.query .models { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; }
.legend { font-weight: 600; color: #687086; font-size: 12.5px; text-transform: uppercase; letter-spacing: .04em; }
article.query { background: #fff; border: 1px solid #e3e6ee; border-radius: 12px; padding: 14px; margin: 12px 0; }
.q .qn { font-weight: 700; margin-bottom: 6px; }
.q .qimg { width: 160px; height: 160px; object-fit: contain; border: 1px solid #e3e6ee; border-radius: 8px; background: #fff; }
.q .qtext { font-size: 15px; margin: 6px 0; } .q .qtext.empty { color: #687086; font-style: italic; font-size: 13px; }
.q .qrel { color: #687086; font-size: 12.5px; }
.model { border-left: 1px solid #e3e6ee; padding-left: 14px; }
.found { font-size: 12.5px; margin-bottom: 6px; } .found.hit { color: #1f9d63; } .found.miss { color: #d64545; }
.tiles { display: flex; gap: 8px; flex-wrap: wrap; }
figure.tile { margin: 0; width: 104px; }
figure.tile .frame { width: 104px; height: 104px; border: 2px solid #e3e6ee; border-radius: 8px; background: #fff;
  display: flex; align-items: center; justify-content: center; overflow: hidden; }
figure.tile.relevant .frame { border-color: #1f9d63; box-shadow: 0 0 0 2px #ddf3e8; }
figure.tile img { max-width: 100%; max-height: 100%; }
figure.tile figcaption { font-size: 11.5px; margin-top: 4px; }
figure.tile .cap { display: flex; justify-content: space-between; gap: 4px; color: #687086; }
figure.tile .cap b { color: #1d2230; }
figure.tile .tnote { color: #4f6bed; font-weight: 600; }
figure.tile .rel { display: inline-block; background: #ddf3e8; color: #1f9d63; font-weight: 600; border-radius: 999px;
  padding: 0 7px; margin: 2px 0; }
figure.tile .title { display: -webkit-box; -webkit-line-clamp: 3; -webkit-box-orient: vertical; overflow: hidden; }
.noimg { color: #687086; font-size: 12px; }
.pager { display: flex; gap: 6px; margin-top: 12px; }
.pager a, .pager span { padding: 4px 10px; border: 1px solid #e3e6ee; border-radius: 6px; background: #fff; }
.pager span.here { background: #4f6bed; color: #fff; border-color: #4f6bed; }
"""

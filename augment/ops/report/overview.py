"""The overview page (`index.html`): key figures, charts, the gallery mosaic, quarantined examples."""
from __future__ import annotations

import os
from typing import Sequence

from augment.core import storage
from augment.ops.report import charts
from augment.ops.report.collect import RunFacts
from augment.ops.report.pages import ProductView, duration, e, page_name, pct, size, when
from augment.core.schema import VARIANT_KINDS
from augment.core.names import STAGE_ORDER, Status

STATUS_COLOURS = {Status.OK.value: "#1f9d63", Status.FILTERED.value: "#d98e04", Status.FAILED.value: "#d64545"}
ROWS_COLOURS = {"written": "#4f6bed", "quarantined": "#d64545"}

def render(facts: RunFacts, quarantine: Sequence[dict], mosaic: Sequence[ProductView], sample_size: int,
             pages: int, enrichment_counts: dict[str, int], evaluation: dict | None = None,
             report_uri: str = "") -> str:
    t = facts.totals
    info = facts.run_info
    created = info.get("created_at")
    sub = [f"run folder <code>{e(facts.run_uri)}</code>"]
    if info.get("config_hash"):
        sub.append(f"config <code>{e(info['config_hash'])}</code>")
    if info.get("code_version"):
        sub.append(f"code <code>{e(info['code_version'])}</code>")
    if created:
        sub.append(f"started {e(when(created))}")
    parts = [
        f"<h1>Run {e(info.get('run_id') or facts.run_uri)}</h1>",
        f'<div class="sub">{" · ".join(sub)}</div>',
        _kpis(facts),
        _damage_panel(facts),
        _evaluation_panel(evaluation, report_uri) if evaluation else "",
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


def _damage_panel(facts: RunFacts) -> str:
    """Shard files that are not as committed: their figures come from the commit records, the gallery from what
    the files hold now. Empty when none is found."""
    if not facts.changed and not facts.repeated_ids:
        return ""
    items = [f"<li><code>{e(shard)}</code>: {e(what)}</li>" for shard, what in sorted(facts.changed.items())[:5]]
    lines = []
    if facts.changed:
        lines.append(f"<p>{len(facts.changed):,} committed shard{'s' if len(facts.changed) != 1 else ''} no longer "
                     f"{'have their' if len(facts.changed) != 1 else 'has its'} files as committed (missing, or "
                     f"another size):</p><ul>{''.join(items)}</ul>")
    if facts.repeated_ids:
        example = sorted(facts.repeated_ids)[0]
        lines.append(f"<p>{len(facts.repeated_ids):,} product id{'s' if len(facts.repeated_ids) != 1 else ''} "
                     f"(e.g. <code>{e(example)}</code>) {'are' if len(facts.repeated_ids) != 1 else 'is'} in two "
                     "shard files: a shard file was overwritten by another's.</p>")
    note = (f"The figures above come from the commit records; the gallery shows what the files hold now. "
            f"moon verify {facts.run_uri} checks every file's bytes against its checksum, and moon run with the "
            "run's input, config and --output, plus --verify, redoes the shards that differ.")
    return f'<section class="panel damage"><h2>Shard files changed since they were committed</h2>{"".join(lines)}' \
           f'<p class="note">{e(note)}</p></section>'


def _kpis(facts: RunFacts) -> str:
    t = facts.totals
    share = t["rows_quarantined"] / t["rows_in"] if t["rows_in"] else 0.0
    pps = facts.products_per_second
    elapsed = facts.elapsed_seconds
    statuses = {k: v for k, v in t["variant_status"].items() if ":" not in k}
    variants = sum(statuses.values())
    cards = [
        ("Products in", f"{t['rows_in']:,}", f"{t['shards']:,} shards", ""),
        ("Written", f"{t['rows_out']:,}", f"{pct(t['rows_out'], t['rows_in'])} of input", "good"),
        ("Quarantined", f"{t['rows_quarantined']:,}", f"{100 * share:.1f} % · {len(t['quarantine_reasons'])} reasons",
         "warn" if t["rows_quarantined"] else ""),
        ("Products / s", f"{pps:,.2f}" if pps else "–", f"over {duration(elapsed)}" if elapsed else "no timing", ""),
        ("Variants", f"{variants:,}", f"{pct(statuses.get('filtered', 0), variants)} filtered" if variants else "none", ""),
        _enrichment_kpi(t),
        *_background_kpi(t),
        ("Output size", size(t["bytes"]), "data + quarantine shards", ""),
    ]
    return '<div class="kpis">' + "".join(
        f'<div class="kpi {cls}"><div class="k">{e(k)}</div><div class="v">{e(v)}</div><div class="d">{e(d)}</div></div>'
        for k, v, d, cls in cards) + "</div>"


ENRICHMENT_PREFIXES = (Status.OK.value, Status.REJECTED.value, Status.FALLBACK.value)


def _enrichment_kpi(t: dict) -> tuple[str, str, str, str]:
    """Share of written products whose `enrichment.status` is not `ok`, and the count of each status prefix, from
    the manifest's `enrichment_status` (every written product, not only the sample)."""
    counts = t.get("enrichment_status") or {}
    total = sum(counts.values())
    if not total:  # enrich_title did not run, or the manifest predates the count
        return ("Enrichment not ok", "–", "no enrichment status in the manifest", "")
    not_ok = total - counts.get(Status.OK.value, 0)
    prefixes = [*ENRICHMENT_PREFIXES, *sorted(set(counts) - set(ENRICHMENT_PREFIXES))]
    detail = " · ".join(f"{p} {counts.get(p, 0):,}" for p in prefixes)
    return ("Enrichment not ok", pct(not_ok, total), detail, "warn" if not_ok else "")


def _background_kpi(t: dict) -> list[tuple[str, str, str, str]]:
    """Share of written products whose background prompts are the curated set's because the model's answer could
    not be used, with each reason, from the manifest's `background_status`; no card for the template backend."""
    counts = t.get("background_status") or {}
    total = sum(counts.values())
    if not total:
        return []
    fallback = total - counts.get(Status.OK.value, 0)
    detail = " · ".join(f"{status} {n:,}" for status, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return [("Backgrounds fallen back", pct(fallback, total), detail, "warn" if fallback else "")]


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
    return charts.hbar([(r, n, f"{n:,} ({pct(n, t['rows_in'])})") for r, n in reasons], colour="#d64545")


def _stage_chart(t: dict) -> str:
    timings = t["timings"]
    if not timings:
        return '<p class="empty">No stage timings recorded.</p>'
    total = sum(timings.values()) or 1.0
    n = max(1, t["rows_in"])
    order = [*STAGE_ORDER, "model_load", "write"]
    ranked = sorted(timings.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0]))
    items = [(stage, s, f"{duration(s)} · {100 * s / total:.0f} % · {duration(s / n)}") for stage, s in ranked]
    return charts.hbar(items)


def _variants_chart(t: dict) -> str:
    counts = t["variant_status"]
    rows = []
    for kind in VARIANT_KINDS:
        parts = [(status, counts.get(f"{kind}:{status}", 0)) for status in STATUS_COLOURS]
        total = sum(v for _, v in parts)
        if total:
            rows.append((kind, parts, f"{pct(parts[1][1], total)} filtered"))
    if not rows:
        return '<p class="empty">No image variants in this run (the image_variants stage did not run).</p>'
    return charts.stacked(rows, STATUS_COLOURS)


def _enrichment_chart(counts: dict[str, int]) -> str:
    if not counts:
        return '<p class="empty">No enriched titles in the sample.</p>'
    total = sum(counts.values())
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return charts.hbar([(status, n, f"{n:,} ({pct(n, total)})") for status, n in items], colour="#7a5af8")


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




def _evaluation_panel(evaluation: dict, report_uri: str) -> str:
    """The latest `moon eval` of a model trained on this run: links to its results and gallery, R@1 / R@10."""
    def link(target: str | None, text: str) -> str:
        if not target:
            return ""
        if storage.is_s3(report_uri) or storage.is_s3(target):
            href = target
        else:
            href = os.path.relpath(target, report_uri)
        return f'<a href="{e(href)}">{e(text)}</a>'

    links = " · ".join(x for x in (link(evaluation.get("results"), "results (JSON)"),
                                   link(evaluation.get("gallery"), "retrieval gallery")) if x)
    directions = ["t->mm", "i->mm", "mm->mm", "t->i", "i->t"]
    head = "".join(f"<th>{e(d)}</th>" for d in directions)
    rows = []
    for name, figures in (evaluation.get("headline") or {}).items():
        cells = "".join(
            f"<td>{100 * figures[d]['R@1']:.1f} / {100 * figures[d]['R@10']:.1f}</td>" if d in figures
            and "R@1" in figures[d] and "R@10" in figures[d] else "<td>–</td>" for d in directions)
        rows.append(f"<tr><td>{e(name)}</td>{cells}</tr>")
    checkpoints = ", ".join(f"<code>{e(c)}</code>" for c in evaluation.get("checkpoints") or [])
    when_text = when(evaluation["evaluated_at"]) if evaluation.get("evaluated_at") else ""
    return _panel("Latest model evaluation",
                  f'<p>{e(when_text)} · {links}</p><p class="note">checkpoint trained on this run: {checkpoints}</p>'
                  f'<table class="evaluation"><thead><tr><th>model</th>{head}</tr></thead><tbody>{"".join(rows)}'
                  "</tbody></table>",
                  f"R@1 / R@10 in percent on {_evaluated(evaluation)}.")


def _evaluated(evaluation: dict) -> str:
    """The products an evaluation ranked (`moon eval --split`); records without a split are held-out ones."""
    count = evaluation.get("products")
    n = f"{count:,} " if isinstance(count, int) else ""
    return {
        "all": f"all {n}products of the run (for a model trained on another catalogue)",
        "train": f"the {n}training products: the model learned from them, so this is no measure of how it does on "
                 "products it has never seen",
    }.get(evaluation.get("split") or "held-out",
          f"the {n}held-out products (and the whole catalogue where evaluated so)")

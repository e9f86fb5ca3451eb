"""Entity highlighting for the report: titles split into plain and labelled segments, rendered as escaped HTML.

The original title is split by the entities' character offsets. The enriched title has no offsets (the MLLM
rewrites it and may repeat an entity, e.g. "... | Brand: Nike"), so every occurrence of an entity's text is
highlighted there, case-insensitively and on word boundaries, longest entity first. Pure functions, no I/O.
"""
from __future__ import annotations

import html
import re
from typing import Iterable, Sequence

Segment = tuple[str, str | None]  # (text, entity label or None)


def title_segments(title: str, entities: Iterable[dict] | None) -> list[Segment]:
    """`title` cut at the entities' offsets. Spans that are out of range, empty, or overlap an earlier span are
    skipped; a span whose offsets do not match its text is located by its text instead."""
    spans: list[tuple[int, int, str]] = []
    for entity in entities or []:
        start, end, text, label = entity.get("start"), entity.get("end"), entity.get("text") or "", entity.get("label")
        if start is None or end is None or not (0 <= start < end <= len(title)) or title[start:end] != text:
            found = title.find(text) if text else -1
            if found < 0:
                continue
            start, end = found, found + len(text)
        spans.append((start, end, label or "ENTITY"))
    return _cut(title, _non_overlapping(spans))


def occurrence_segments(text: str, entities: Iterable[dict] | None) -> list[Segment]:
    """`text` with every word-bounded occurrence of each entity text marked, longest texts first."""
    labels: dict[str, str] = {}
    for entity in entities or []:
        key = (entity.get("text") or "").strip()
        if key and key.casefold() not in {k.casefold() for k in labels}:
            labels[key] = entity.get("label") or "ENTITY"
    spans: list[tuple[int, int, str]] = []
    for key in sorted(labels, key=len, reverse=True):
        pattern = re.compile(r"(?<!\w)" + re.escape(key) + r"(?!\w)", re.IGNORECASE)
        spans.extend((m.start(), m.end(), labels[key]) for m in pattern.finditer(text))
    return _cut(text, _non_overlapping(spans))


def to_html(segments: Sequence[Segment]) -> str:
    """Escaped HTML: labelled segments become <mark class="ent ent-<label>">, titled with their label."""
    out = []
    for text, label in segments:
        if label is None:
            out.append(html.escape(text))
        else:
            css = re.sub(r"[^a-z0-9]+", "-", label.lower())
            out.append(f'<mark class="ent ent-{css}" title="{html.escape(label)}">{html.escape(text)}</mark>')
    return "".join(out)


def _non_overlapping(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Spans sorted by start; a span that overlaps one already kept is dropped (earlier, then longer, wins)."""
    kept: list[tuple[int, int, str]] = []
    taken: list[tuple[int, int]] = []
    for start, end, label in sorted(spans, key=lambda s: (s[0], -(s[1] - s[0]))):
        if any(start < e and s < end for s, e in taken):
            continue
        kept.append((start, end, label))
        taken.append((start, end))
    return kept


def _cut(text: str, spans: list[tuple[int, int, str]]) -> list[Segment]:
    segments: list[Segment] = []
    position = 0
    for start, end, label in spans:
        if start > position:
            segments.append((text[position:start], None))
        segments.append((text[start:end], label))
        position = end
    if position < len(text):
        segments.append((text[position:], None))
    return segments

"""Checks every enriched title must pass before it is written, whatever made it.

An enriched title is only useful if it says the same thing as the source title, better: the guards reject a
candidate that lost an extracted BRAND, CATEGORY or MATERIAL entity, switched script (a Chinese title enriched
in English), is too short or too long, or carries control characters, HTML, URLs or instructions (prompt
injection echoed back, model chatter). Each check returns a short stable reason code, used in the enrichment
status `rejected:<reason>` and counted in the run report.

Pure functions over strings: no model, no I/O. Every backend (template, openai, vllm, transformers) calls
`check_title` on its final candidate; the backends decide what to do on a failure (retry, then keep the source).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping

from augment.stages.text import dominant_script, fold, normalise_space, unsafe_text

# Labels whose entities an enriched title must keep (the paper's entity-aware enrichment).
KEPT_LABELS = ("BRAND", "CATEGORY", "MATERIAL")


@dataclasses.dataclass(frozen=True)
class TitleBounds:
    """Length bounds of an enriched title, relative to its source (characters after whitespace folding)."""

    min_ratio: float = 0.5  # at least this share of the source length
    max_chars: int = 300  # at most this many characters...
    max_ratio: float = 1.25  # ...unless the source itself is long: then up to this multiple of it

    def limits(self, source: str) -> tuple[int, int]:
        n = len(source)
        return math.ceil(self.min_ratio * n), max(self.max_chars, math.ceil(self.max_ratio * n))


def kept_entities(entities: Iterable[Mapping] | None, labels: tuple[str, ...] = KEPT_LABELS) -> list[str]:
    """Distinct texts of the entities a candidate must keep, in title order."""
    seen, out = set(), []
    for entity in entities or ():
        text = (entity.get("text") or "").strip()
        if entity.get("label") in labels and text and fold(text) not in seen:
            seen.add(fold(text))
            out.append(text)
    return out


def missing_entities(candidate: str, entities: Iterable[Mapping] | None) -> list[str]:
    folded = fold(candidate)
    return [text for text in kept_entities(entities) if fold(text) not in folded]


def check_title(
    candidate: str | None,
    source: str,
    entities: Iterable[Mapping] | None,
    bounds: TitleBounds = TitleBounds(),
) -> str | None:
    """None when `candidate` may replace `source`; otherwise the reason code of the first failed check.

    Reasons: empty, control_chars, html, url, instructions, too_short, too_long, language, missing_entity.
    """
    reason = unsafe_text(candidate)
    if reason:
        return reason
    low, high = bounds.limits(normalise_space(source))
    if len(candidate) < low:
        return "too_short"
    if len(candidate) > high:
        return "too_long"
    expected = dominant_script(source)
    if expected is not None and dominant_script(candidate) != expected:
        return "language"
    if missing_entities(candidate, entities):
        return "missing_entity"
    return None

"""Checks every generated title and background prompt must pass before it is written, whatever made it.

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
import functools
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping

# Labels whose entities an enriched title must keep (the paper's entity-aware enrichment).
KEPT_LABELS = ("BRAND", "CATEGORY", "MATERIAL")

_HTML = re.compile(r"<\s*/?\s*[a-zA-Z][a-zA-Z0-9-]*(\s[^<>]*)?/?\s*>|&(#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);")
_URL = re.compile(r"(https?://|ftp://|www\.)\S+|\b[\w-]+\.(com|net|org|io|cn|ru|xyz|top)\b", re.IGNORECASE)
# Phrases that belong to a conversation with the model, not to a product title. English and Chinese, since the
# prompts exist in both languages.
_INSTRUCTION = re.compile(
    r"\b(ignore|disregard|forget)\b.{0,40}\b(instruction|prompt|rule|above|previous)s?\b"
    r"|\b(system|developer)\s+prompt\b"
    r"|\bas an ai\b|\blanguage model\b|\bi (cannot|can't|am unable|won't)\b"
    r"|\b(here is|here's) (the|your|an?)\b|\benriched title\b|\boutput format\b"
    r"|\b(user|assistant|system)\s*:"
    r"|```"
    r"|忽略.{0,10}(指令|提示|要求)|系统提示|作为.{0,6}(AI|人工智能|语言模型)|丰富后的标题|输出格式",
    re.IGNORECASE | re.DOTALL,
)


@dataclasses.dataclass(frozen=True)
class TitleBounds:
    """Length bounds of an enriched title, relative to its source (characters after whitespace folding)."""

    min_ratio: float = 0.5  # at least this share of the source length
    max_chars: int = 300  # at most this many characters...
    max_ratio: float = 1.25  # ...unless the source itself is long: then up to this multiple of it

    def limits(self, source: str) -> tuple[int, int]:
        n = len(source)
        return math.ceil(self.min_ratio * n), max(self.max_chars, math.ceil(self.max_ratio * n))


def normalise_space(text: str) -> str:
    return " ".join(text.split())


def strip_control(text: str) -> str:
    """Drop control and format characters (C*), keeping the text's words; whitespace becomes single spaces."""
    kept = "".join(ch if not unicodedata.category(ch).startswith("C") else " " for ch in text)
    return normalise_space(kept)


def has_control(text: str) -> bool:
    # Plain spaces are fine; tabs, newlines, zero-width and bidi controls are not (they hide text or break rows).
    return any(unicodedata.category(ch).startswith("C") for ch in text)


@functools.lru_cache(maxsize=8192)  # unicodedata.name is slow; titles reuse few characters
def script_of(ch: str) -> str | None:
    """Coarse script of a letter: LATIN, CJK (Han, kana, Hangul together), CYRILLIC, ARABIC...; None otherwise."""
    if not ch.isalpha():
        return None
    name = unicodedata.name(ch, "")
    if not name:
        return None
    first = name.split()[0]
    if first in ("CJK", "HIRAGANA", "KATAKANA", "HANGUL", "IDEOGRAPHIC", "HALFWIDTH", "FULLWIDTH"):
        # Full-width Latin letters (ＡＢＣ) are Latin in disguise.
        if first == "FULLWIDTH" and "LATIN" in name:
            return "LATIN"
        return "CJK"
    return first


def dominant_script(text: str) -> str | None:
    """The script most letters of `text` are written in, or None when it has no letters."""
    counts = Counter(s for s in map(script_of, text) if s)
    return counts.most_common(1)[0][0] if counts else None


def fold(text: str) -> str:
    """Compare form: NFKC, case-folded, punctuation and spacing reduced to single spaces."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join("".join(ch if ch.isalnum() else " " for ch in text).split())


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


def unsafe_text(candidate: str | None) -> str | None:
    """The reason code when model output is empty or carries control characters, markup, links or instructions."""
    if candidate is None or not candidate.strip():
        return "empty"
    if has_control(candidate):
        return "control_chars"
    if _HTML.search(candidate):
        return "html"
    if _URL.search(candidate):
        return "url"
    if _INSTRUCTION.search(candidate):
        return "instructions"
    return None


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


def check_background_prompt(candidate: str, max_chars: int = 300) -> str | None:
    """None when `candidate` is a usable background description; otherwise a reason code.

    A background prompt is one sentence that is rendered into the Algorithm 7 image-editing prompt, so it must
    not carry markup, links, instructions or several lines.
    """
    reason = unsafe_text(candidate)
    if reason:
        return reason
    if len(candidate) < 12:
        return "too_short"
    if len(candidate) > max_chars:
        return "too_long"
    if dominant_script(candidate) is None:
        return "no_words"
    return None


def check_background_prompts(candidates: list[str], count: int) -> str | None:
    """None when `candidates` are `count` distinct usable prompts; otherwise a reason code."""
    if len(candidates) != count:
        return "wrong_count"
    for text in candidates:
        reason = check_background_prompt(text)
        if reason:
            return reason
    if len({fold(t) for t in candidates}) != len(candidates):
        return "repeated"
    return None

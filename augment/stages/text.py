"""Text checks every stage that writes generated text shares: scripts, comparison form, and what model output
must never carry (control characters, markup, links, instructions).

Pure functions over strings: no model, no I/O. The title guards (enrich_title/guards.py) and the background prompt
guards (background_prompts/guards.py) are built from these.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter

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

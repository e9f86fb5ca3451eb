"""Title clean-up before tokenisation, with a map back to the original characters.

Titles arrive with HTML entities (`Women&#39;s`, `&amp;`), control characters, odd white space and, now and
then, a whole page of text. The pipeline reads a cleaned copy; every entity it finds is reported with offsets into
the ORIGINAL title, so the cleaning keeps, for each cleaned character, where it came from. Pure Python, no spaCy:
the same code serves the extractor, the scorer and the tests.
"""
from __future__ import annotations

import html
import re
import unicodedata

# An HTML character reference: named (&amp;), decimal (&#39;) or hex (&#x27;); the semicolon is optional in the
# wild ("&amp" at the end of a truncated title).
_ENTITY = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});?")
# Characters that carry no meaning in a title: C0/C1 controls, zero-width marks, BOM. They become spaces so that
# they still separate words ("Nike\x00Air").
_INVISIBLE = {chr(c) for c in range(0, 32)} | {chr(c) for c in range(0x7F, 0xA0)}
_INVISIBLE |= {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"}
# Punctuation that stands for a plain ASCII mark in product titles (typographic quotes, dashes, full-width forms).
_FOLD = {
    "\u2018": "'", "\u2019": "'", "\u02bc": "'", "\u00b4": "'", "`": "'",
    "\u201c": '"', "\u201d": '"', "\u2033": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-",
    "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\u3000": " ",
    "\uff0c": ",", "\uff08": "(", "\uff09": ")", "\uff1a": ":", "\uff1b": ";", "\uff01": "!", "\uff0f": "/",
}


class CleanTitle:
    """A cleaned title and the way back: `span(start, end)` gives the original offsets of a cleaned span."""

    __slots__ = ("original", "text", "_starts", "_ends")

    def __init__(self, original: str, text: str, starts: list[int] | None, ends: list[int] | None):
        self.original = original
        self.text = text
        # None when the cleaned text has the same length as the original and offsets are unchanged.
        self._starts = starts
        self._ends = ends

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original (start, end) of the cleaned characters [start, end); end exclusive, never past the title."""
        if self._starts is None:
            return start, end
        if end <= start:
            pos = self._starts[start] if start < len(self._starts) else len(self.original)
            return pos, pos
        return self._starts[start], self._ends[end - 1]


def clean_title(title: object, max_chars: int = 2000) -> CleanTitle:
    """Clean one title: decode HTML entities, blank out control characters, fold typographic punctuation.

    Never raises: None and non-strings become "", and only the first `max_chars` characters are read (entities
    are looked for there; the rest of a 100 kB "title" is ignored).
    """
    if not isinstance(title, str):
        title = "" if title is None else str(title)
    head = title[:max_chars] if len(title) > max_chars else title
    if head.isascii() and "&" not in head and head.isprintable():
        return CleanTitle(title, _break_runs(head), None, None)
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    for match in _ENTITY.finditer(head) if "&" in head else ():
        _append_plain(head, pos, match.start(), pieces, starts, ends)
        decoded = _decode(match.group(0))
        for ch in decoded:
            pieces.append(ch)
            starts.append(match.start())
            ends.append(match.end())
        pos = match.end()
    _append_plain(head, pos, len(head), pieces, starts, ends)
    text = _break_runs("".join(pieces))
    if len(text) == len(head) and text == head:
        return CleanTitle(title, head, None, None)
    return CleanTitle(title, text, starts, ends)


# A run of marks with no letter, digit or space between them ("!!!!!!", "★★★★★★", emoji): spaCy's tokenizer strips
# such a run one character at a time, rescanning the rest each time, so a 2,000-character run took a second.
# Every RUN_CHARS-th character of a longer run becomes a space (same length: offsets stay as they are).
RUN_CHARS = 4
_RUN = re.compile(r"[^\w\s]{%d,}" % (RUN_CHARS + 1))


def _break_runs(text: str) -> str:
    if not _RUN.search(text):
        return text
    return _RUN.sub(lambda m: "".join(" " if i % (RUN_CHARS + 1) == RUN_CHARS else ch
                                      for i, ch in enumerate(m.group(0))), text)


def _append_plain(src: str, start: int, end: int, pieces: list, starts: list, ends: list) -> None:
    for i in range(start, end):
        ch = src[i]
        if ch in _INVISIBLE or (ch > "\x7f" and unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn")):
            ch = " "
        else:
            ch = _FOLD.get(ch, ch)
        pieces.append(ch)
        starts.append(i)
        ends.append(i + 1)


def _decode(entity: str) -> str:
    """One HTML character reference as text; an unknown name stays as written, invisible results become a space."""
    decoded = html.unescape(entity if entity.endswith(";") else entity + ";")
    if decoded.endswith(";") and not entity.endswith(";"):  # unknown name: html.unescape left it alone
        return entity
    if decoded == entity:
        return entity
    out = []
    for ch in decoded:
        if ch in _INVISIBLE or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            out.append(" ")
        else:
            out.append(_FOLD.get(ch, ch))
    return "".join(out) or " "


def fold(value: str) -> str:
    """The form two entity texts are compared in: case-folded, punctuation as space, white space collapsed."""
    value = html.unescape(value) if "&" in value else value
    return " ".join(_PUNCT.sub(" ", value.casefold()).split())


_PUNCT = re.compile(r"[^\w\s]|_")

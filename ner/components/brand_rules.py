"""`moon_brand_rules`: a BRAND for titles whose brand no lexicon knows, from position and casing.

Sellers put the brand first: "SEAPESCA Mini Crankbait ...", "Holy Land Market Unisex Leather Sandals". When
neither the row's catalogue brand nor a brand lexicon found a brand, this component proposes the title's leading
run of capitalised words, after skipping leading noise ("New", "2018", "[", "Original"), and ending the run at:
  - a word of the stop-lists (generic title words, gender and size words: "Men's", "Women", "Kids", "XL"),
  - a word that starts a CATEGORY, MATERIAL or COLOR candidate ("Fishing Lure", "Leather", "Black"),
  - punctuation other than the marks brands contain (& ' . -), a number, or a lower-case word,
  - `max_tokens` words.
It also reads "by <Brand>" / "Brand: <Brand>" forms anywhere in the title. Its spans go to `moon_rules`, which
the resolver trusts least.
"""
from __future__ import annotations

from spacy.language import Language
from spacy.tokens import Doc, Span

from ner.components import groups
from ner.lexicon import read_phrases, resolve_path

_JOINERS = {"&", "'s", "'", "-", ".", "and", "of", "de", "la", "le", "du", "the"}


@Language.factory(
    "moon_brand_rules",
    default_config={
        "label": "BRAND",
        "lead_skip": "en/brand_lead_skip.txt",
        "stop_words": "en/brand_stop.txt",
        "max_tokens": 3,
        "blocking_labels": ["CATEGORY", "MATERIAL", "COLOR"],
    },
)
def make_brand_rules(nlp: Language, name: str, label: str, lead_skip: str, stop_words: str, max_tokens: int,
                     blocking_labels: list[str]) -> "BrandRules":
    return BrandRules(
        label=label,
        lead_skip={w.casefold() for w in read_phrases(resolve_path(lead_skip))} if lead_skip else set(),
        stop_words={w.casefold() for w in read_phrases(resolve_path(stop_words))} if stop_words else set(),
        max_tokens=max_tokens,
        blocking_labels=set(blocking_labels),
    )


class BrandRules:
    def __init__(self, label: str, lead_skip: set[str], stop_words: set[str], max_tokens: int,
                 blocking_labels: set[str]):
        self.label = label
        self.lead_skip = lead_skip
        self.stop_words = stop_words
        self.max_tokens = max_tokens
        self.blocking_labels = blocking_labels

    def __call__(self, doc: Doc) -> Doc:
        spans: list[Span] = []
        if not self._has_brand(doc):
            blocked = self._blocked_starts(doc)
            span = self._leading_brand(doc, blocked)
            if span is not None:
                spans.append(span)
        doc.spans[groups.RULES] = spans
        return doc

    def _has_brand(self, doc: Doc) -> bool:
        for key in (groups.HINT, groups.LEXICON):
            if key in doc.spans:
                for span in doc.spans[key]:
                    if span.label_ == self.label:
                        return True
        return False

    def _blocked_starts(self, doc: Doc) -> set[int]:
        blocked: set[int] = set()
        if groups.LEXICON in doc.spans:
            for span in doc.spans[groups.LEXICON]:
                if span.label_ in self.blocking_labels:
                    blocked.update(range(span.start, span.end))
        return blocked

    def _leading_brand(self, doc: Doc, blocked: set[int]) -> Span | None:
        n = len(doc)
        i = 0
        # 1. skip leading noise: punctuation, numbers, and words like "New", "Original", "2018"
        while i < n:
            tok = doc[i]
            low = tok.lower_
            if tok.is_punct or tok.is_space or tok.like_num or low in self.lead_skip or not any(
                c.isalpha() for c in tok.text
            ):
                i += 1
                continue
            break
        # 2. the run of capitalised words
        start = i
        words = 0
        end = start
        while i < n and words < self.max_tokens:
            tok = doc[i]
            text = tok.text
            low = tok.lower_
            if i in blocked or low in self.stop_words:
                break
            if low in _JOINERS and end > start:
                i += 1
                continue
            if not text[:1].isupper() or tok.like_num:
                break
            words += 1
            i += 1
            end = i
        if end == start:
            return None
        return Span(doc, start, end, label=self.label)

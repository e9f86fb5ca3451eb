"""`moon_brand_hint`: the row's catalogue brand, where it occurs in the title, is a BRAND candidate.

The caller puts the hint in `doc.user_data["moon_brand_hint"]` (the extractor does this from `brand_hints`). The
match is case-insensitive and must start and end on token boundaries ("Puma" is not found inside "Pumas").
Every occurrence becomes a candidate in `moon_hint`, which the resolver trusts above any lexicon.
"""
from __future__ import annotations

import re

from spacy.language import Language
from spacy.tokens import Doc

from ner.components import groups


@Language.factory("moon_brand_hint", default_config={"label": "BRAND", "max_chars": 100})
def make_brand_hint(nlp: Language, name: str, label: str, max_chars: int) -> "BrandHint":
    return BrandHint(label=label, max_chars=max_chars)


class BrandHint:
    def __init__(self, label: str = "BRAND", max_chars: int = 100):
        self.label = label
        self.max_chars = max_chars

    def __call__(self, doc: Doc) -> Doc:
        hint = doc.user_data.get(groups.HINT_ATTR)
        spans = []
        if isinstance(hint, str):
            hint = " ".join(hint.split())
            if 0 < len(hint) <= self.max_chars:
                # Any run of white space in the title matches the single spaces of the hint.
                pattern = r"\s+".join(re.escape(part) for part in hint.split(" "))
                for match in re.finditer(pattern, doc.text, flags=re.IGNORECASE):
                    span = doc.char_span(match.start(), match.end(), alignment_mode="strict")
                    if span is not None:
                        spans.append((span.start, span.end, self.label, hint.casefold()))
        groups.put(doc, groups.HINT, spans)
        return doc

"""`moon_entity_resolver`: from overlapping candidates to `doc.ents`, by trust, length and label priority.

Candidates come from the span groups named in `sources`, most trusted first (the row's catalogue brand, then the
lexicons, then rule guesses). Within a source, a longer span beats a shorter one ("stainless steel" over
"steel", "Navy Blue" over "Blue"); at equal length, `label_priority` decides ("Jersey" is a MATERIAL before it is
a CATEGORY when both lexicons list it). A chosen span blocks every candidate that overlaps it.

Stop-lists drop candidates that lexicons get wrong in titles: a phrase listed under a label in `stop_lists`
(e.g. BRAND: "new", "original") is never an entity of that label.
"""
from __future__ import annotations

from spacy.language import Language
from spacy.tokens import Doc, Span

from ner.components import groups
from ner.lexicon import read_phrases, resolve_path


@Language.factory(
    "moon_entity_resolver",
    default_config={
        "sources": [groups.HINT, groups.LEXICON, groups.RULES],
        "label_priority": ["BRAND", "MATERIAL", "CATEGORY", "COLOR"],
        "stop_lists": {},
    },
)
def make_resolver(nlp: Language, name: str, sources: list[str], label_priority: list[str],
                  stop_lists: dict[str, str]) -> "EntityResolver":
    stops = {label: {p.casefold() for p in read_phrases(resolve_path(path))} for label, path in stop_lists.items()}
    return EntityResolver(sources=sources, label_priority=label_priority, stops=stops)


class EntityResolver:
    def __init__(self, sources: list[str], label_priority: list[str], stops: dict[str, set[str]] | None = None):
        self.sources = list(sources)
        # labels not listed come after the listed ones, in name order
        self.rank = {label: i for i, label in enumerate(label_priority)}
        self.stops = stops or {}

    def __call__(self, doc: Doc) -> Doc:
        taken = bytearray(len(doc))
        chosen: list[Span] = []
        for trust, key in enumerate(self.sources):
            if key not in doc.spans:
                continue
            group = doc.spans[key]
            if not len(group):
                continue
            ordered = sorted(group, key=self._order)
            for span in ordered:
                start, end = span.start, span.end
                if any(taken[start:end]):
                    continue
                stops = self.stops.get(span.label_)
                if stops and span.text.casefold() in stops:
                    continue
                taken[start:end] = b"\x01" * (end - start)
                chosen.append(span)
        chosen.sort(key=lambda s: s.start)
        doc.ents = chosen
        return doc

    def _order(self, span: Span) -> tuple:
        return (-(span.end - span.start), self.rank.get(span.label_, len(self.rank)), span.start)

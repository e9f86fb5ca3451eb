"""`moon_entity_resolver`: from overlapping candidates to `doc.ents`, by trust, length and label priority.

Candidates come from the span groups named in `sources`, most trusted first (in ner/configs/en.cfg: the row's
catalogue brand, the brand and category rules' choices, the lexicons, then the other rule guesses). Within a
source, a longer span beats a shorter one ("stainless steel" over "steel", "Navy Blue" over "Blue"); at equal
length, `label_priority` decides ("Jersey" is a MATERIAL before it is a CATEGORY when both lexicons list it). A
chosen span blocks every candidate that overlaps it.

Stop-lists drop candidates that lexicons get wrong in titles: a phrase listed under a label in `stop_lists`
(e.g. MATERIAL: "fabric") is never an entity of that label, except as the row's catalogue brand (`moon_hint`),
which stands whatever it is.

Lexicon phrases of a `silent_labels` label (NONE in the bundled lexicons) name what is never an entity although
a word in it is: "Lace Up" is how a shoe closes, not the material lace. They take part like any lexicon candidate,
so they block the shorter lexicon candidates inside them (the brand and category rules' choices come from more
trusted sources and stand), and are then left out of the entities.
"""
from __future__ import annotations

from spacy.language import Language
from spacy.tokens import Doc, Span

from ner.components import groups
from ner.lexicon import read_phrases, read_words, resolve_path


@Language.factory(
    "moon_entity_resolver",
    default_config={
        "sources": [groups.HINT, groups.BRAND, groups.LEXICON, groups.RULES],
        "label_priority": ["BRAND", "MATERIAL", "CATEGORY", "COLOR"],
        "stop_lists": {},
        "one_per_title": {},
        "generic": {},
        "silent_labels": ["NONE"],
    },
)
def make_resolver(nlp: Language, name: str, sources: list[str], label_priority: list[str],
                  stop_lists: dict[str, str], one_per_title: dict[str, str],
                  generic: dict[str, str], silent_labels: list[str]) -> "EntityResolver":
    stops = {label: {p.casefold() for p in read_phrases(resolve_path(path))} for label, path in stop_lists.items()}
    generics = {label: read_words(resolve_path(path)) for label, path in generic.items()}
    return EntityResolver(sources=sources, label_priority=label_priority, stops=stops, one_per_title=one_per_title,
                          generic=generics, silent_labels=silent_labels)


class EntityResolver:
    def __init__(self, sources: list[str], label_priority: list[str], stops: dict[str, set[str]] | None = None,
                 one_per_title: dict[str, str] | None = None, generic: dict[str, set[str]] | None = None,
                 silent_labels: list[str] | tuple[str, ...] = ("NONE",)):
        self.sources = list(sources)
        self.silent = frozenset(silent_labels)
        # labels not listed come after the listed ones, in name order
        self.rank = {label: i for i, label in enumerate(label_priority)}
        self.stops = stops or {}
        for label, which in (one_per_title or {}).items():
            if which not in ("first", "last", "longest", "phrases_last"):
                raise ValueError(f"one_per_title.{label}: expected first, last, longest or phrases_last, got "
                                 f"{which!r}")
        self.one_per_title = dict(one_per_title or {})
        # label -> lower-case words that name the label only generically ("fabric", "cloth"): when one entity of
        # the label is kept per title, a specific one is kept before them
        self.generic = generic or {}

    def __call__(self, doc: Doc) -> Doc:
        taken = bytearray(len(doc))
        chosen: list[tuple] = []
        rank = self.rank
        last = len(rank)
        found = doc.user_data.get(groups.CANDIDATES, {})
        for key in self.sources:
            candidates = found.get(key)
            if not candidates:
                continue
            if len(candidates) > 1:
                candidates = sorted(candidates, key=lambda c: (c[0] - c[1], rank.get(c[2], last), c[0]))
            for cand in candidates:
                start, end, label = cand[0], cand[1], cand[2]
                if 1 in taken[start:end]:
                    continue
                stops = self.stops.get(label) if key != groups.HINT else None  # the row's own brand stands
                if stops and groups.tokens(doc).text(start, end).casefold() in stops:
                    continue
                taken[start:end] = b"\x01" * (end - start)
                if label not in self.silent:  # a silent phrase blocks what it covers and is no entity itself
                    chosen.append(cand)
        chosen.sort()
        for label, which in self.one_per_title.items():
            if sum(1 for c in chosen if c[2] == label) < 2:
                continue  # nothing to choose between
            if which == "phrases_last":
                which = "last" if _has_phrases(groups.tokens(doc)) else "first"
            chosen = _keep_one(chosen, label, which, self.generic.get(label), groups.tokens(doc).lows)
        # the extractor reads the chosen tuples; doc.ents are for spaCy users
        data = doc.user_data
        data[groups.ENTS] = chosen
        if not data.get(groups.ENTS_ONLY):
            doc.ents = [Span(doc, s, e, label=label, span_id=ent_id) for s, e, label, ent_id in chosen]
        return doc


def _has_phrases(toks) -> bool:
    """Whether a title is written in phrases ("Lace Up Oxford, Wheatfield Leather, 5 M"; "... - Shop | US") rather
    than as one keyword list: a comma, a bar or a free-standing dash."""
    for i, text in enumerate(toks.texts):
        if text in (",", "|", ";") or (text == "-" and toks.spaces[i] and i > 0 and toks.spaces[i - 1]):
            return True
    return False


def _keep_one(chosen: list[tuple], label: str, which: str, generic: set[str] | None = None,
              lows: list[str] | None = None) -> list[tuple]:
    """Keep one candidate of `label` (the first, the last or the longest in the title); others are dropped.
    Candidates whose words are all `generic` are kept only when there is no other."""
    of_label = [c for c in chosen if c[2] == label]
    if len(of_label) < 2:
        return chosen
    if generic and lows is not None:
        specific = [c for c in of_label if not all(lows[i] in generic for i in range(c[0], c[1]))]
        of_label = specific or of_label
    if which == "first":
        keep = of_label[0]
    elif which == "last":
        keep = of_label[-1]
    else:
        keep = max(of_label, key=lambda c: (c[1] - c[0], -c[0]))
    return [c for c in chosen if c[2] != label or c is keep]

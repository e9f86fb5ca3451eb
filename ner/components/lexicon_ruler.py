"""`moon_lexicon_ruler`: every lexicon phrase and token pattern that matches, as candidates in `moon_lexicon`.

Phrases (string patterns) go into one PhraseMatcher on lower-cased tokens; token patterns into one Matcher. Each
match key is "LABEL|id", so a candidate span carries its label and canonical id. Overlaps are kept: choosing
between "Navy Blue" (COLOR), "Blue" (COLOR) and "Navy Blue Shoes" is the resolver's job.

Category phrases also match in the other grammatical number (Sneaker / Sneakers) with the same id.
"""
from __future__ import annotations

import json
from typing import Iterable

from spacy.language import Language
from spacy.matcher import Matcher, PhraseMatcher
from spacy.tokens import Doc

from ner.components import groups
from ner.lexicon import LexiconError, expand_numbers, read_lexicon

KEY_SEP = "|"


@Language.factory(
    "moon_lexicon_ruler",
    default_config={
        "lexicons": [],
        "extra_lexicons": [],
        "number_labels": ["CATEGORY"],
        "phrase_attr": "LOWER",
        "min_phrase_chars": 2,
    },
)
def make_lexicon_ruler(
    nlp: Language,
    name: str,
    lexicons: list[str],
    extra_lexicons: list[str],
    number_labels: list[str],
    phrase_attr: str,
    min_phrase_chars: int,
) -> "LexiconRuler":
    ruler = LexiconRuler(nlp, name, phrase_attr=phrase_attr, number_labels=tuple(number_labels),
                         min_phrase_chars=min_phrase_chars)
    for spec in list(lexicons) + list(extra_lexicons):
        ruler.add_patterns(read_lexicon(spec))
    return ruler


class LexiconRuler:
    """Matches lexicon phrases and token patterns; writes all matches, overlapping or not, to `moon_lexicon`."""

    def __init__(self, nlp: Language, name: str = "moon_lexicon_ruler", phrase_attr: str = "LOWER",
                 number_labels: tuple[str, ...] = ("CATEGORY",), min_phrase_chars: int = 2):
        self.nlp = nlp
        self.name = name
        self.number_labels = number_labels
        self.min_phrase_chars = min_phrase_chars
        self.phrase_matcher = PhraseMatcher(nlp.vocab, attr=phrase_attr)
        self.matcher = Matcher(nlp.vocab)
        # match key hash -> (label, id); filled as patterns are added
        self._keys: dict[int, tuple[str, str]] = {}
        # Lower-case strings one of which must occur in a title for a token pattern to match (see _trigger).
        self._triggers: set[str] = set()
        self._untriggered = False
        self.size = 0
        # label -> lower-case words of its phrases ("file", "folder", "tape", "dispenser" for CATEGORY); other
        # components read them as the vocabulary of a label
        self.label_words: dict[str, set[str]] = {}

    def add_patterns(self, patterns: Iterable[dict]) -> None:
        """Add entity-ruler style patterns ({"label", "pattern", "id"}); string patterns in both numbers."""
        pending: dict[str, list[str]] = {}
        for item in expand_numbers(patterns, self.number_labels):
            label = item["label"]
            pattern = item["pattern"]
            ent_id = str(item.get("id") or "")
            key = f"{label}{KEY_SEP}{ent_id}"
            self._keys[self.nlp.vocab.strings.add(key)] = (label, ent_id)
            if isinstance(pattern, str):
                if len(pattern.strip()) >= self.min_phrase_chars:
                    pending.setdefault(key, []).append(pattern)
                    self.label_words.setdefault(label, set()).update(pattern.lower().split())
            else:
                try:
                    self.matcher.add(key, [pattern])
                except ValueError as exc:  # spaCy's schema: an unknown attribute, a value of the wrong type
                    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
                    first = next((line[2:] for line in lines if line.startswith("- ")), lines[-1] if lines else "")
                    raise LexiconError(f"the {label} pattern {json.dumps(pattern)[:80]} (id {ent_id!r}) is not "
                                       f"a token pattern spaCy takes: {first}") from None
                trigger = _trigger(pattern)
                if trigger is None:
                    self._untriggered = True
                else:
                    self._triggers.update(trigger)
                self.size += 1
        for key, phrases in pending.items():
            docs = list(self.nlp.tokenizer.pipe(phrases))
            self.phrase_matcher.add(key, docs)
            self.size += len(docs)
        if pending:
            self._forget_phrases()

    def _forget_phrases(self) -> None:
        """Empty the tokenizer's chunk cache after phrases went through it. spaCy's tokenizer caches at most
        `max_cache_size` (10,000) distinct chunks and then stops caching: filled with lexicon phrases, it would keep
        none of the titles' chunks, and tokenizing 43k catalogue titles takes a third longer."""
        flush = getattr(self.nlp.tokenizer, "_flush_cache", None)
        if flush is not None:
            flush()

    def __call__(self, doc: Doc) -> Doc:
        keys = self._keys
        found = [(start, end) + keys[match_id] for match_id, start, end in self.phrase_matcher(doc)]
        if len(self.matcher) and self._may_match(doc):
            found += [(start, end) + keys[match_id] for match_id, start, end in self.matcher(doc)]
        groups.put(doc, groups.LEXICON, found)
        return doc

    def _may_match(self, doc: Doc) -> bool:
        """Whether any token pattern can match: skips the Matcher on the many titles without a trigger word."""
        if self._untriggered:
            return True
        return not self._triggers.isdisjoint(groups.tokens(doc).lows)


def _trigger(pattern: list[dict]) -> set[str] | None:
    """The smallest set of literal strings (ORTH / LOWER / TEXT values) of which a match must contain one."""
    best = None
    for spec in pattern:
        if spec.get("OP") in ("?", "*", "!"):
            continue
        for attr in ("ORTH", "LOWER", "TEXT"):
            value = spec.get(attr)
            if isinstance(value, str):
                options = {value.lower()}
            elif isinstance(value, dict) and isinstance(value.get("IN"), list):
                options = {str(v).lower() for v in value["IN"]}
            else:
                continue
            if best is None or len(options) < len(best):
                best = options
    return best

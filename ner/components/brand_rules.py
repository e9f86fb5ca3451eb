"""`moon_brand_rules`: which span of a title is its BRAND, from lexicons, position, casing and a learned scorer.

Sellers put the brand first ("SEAPESCA Mini Crankbait ...", "Holy Land Market Unisex Leather Sandals"), after
marketing noise ("Original New Arrival Authentic Nike Air Max"), or name it in a shop's own words ("... Tape by
Scotch MMM600121296 - OnTimeSupplies.com"). This component owns the BRAND label: it takes the BRAND candidates
of the lexicons (`moon_lexicon`) and of the row's hint (`moon_hint`), decides which one stands, and writes its
choice to `moon_brand`; lexicon BRAND spans it did not keep are removed from `moon_lexicon`.

A lexicon brand that ends a longer CATEGORY, MATERIAL or COLOR candidate starting before it is a word of that
phrase, not a brand ("Silk" in "100% Silk Scarf").

With a `scorer` (the bundled config names `en/brand_scorer.json`), one brand per title:
1. a lexicon brand at the brand position followed by a gender or size word or nothing is the brand;
2. the words up to a legal form at the brand position are a company's name (`ner.brand_candidates.legal_name`:
   "Clean Coffee Co Whole Bean Coffee"), kept whole;
3. a web-shop attribution names it (`ner.brand_candidates.attribution`: "by <Brand> <part number>",
   "- <Brand> | shop");
4. otherwise the scorer (`ner.brand_model`) picks the best of the candidates of `ner.brand_candidates` (leading
   words at the brand position, lexicon brands, words after "by", no brand); when it picks no brand, a leading
   word that comes back later in the title is the brand; a guess that is one ordinary word
   (`brand_candidates.lone_common_word`) or only describes the product (`brand_candidates.product_words`: "Soft
   Leather Wallet", "Outdoor Tactical Molle Pouch": ordinary words with a category, material or colour word or
   one of the `descriptor_words` of use, season, origin and properties) is no brand;
5. a guess that starts with a describing word not written in capitals ("Outdoor MOLLE ...", "High Elastic SBR
   Belt") is no brand, unless a lexicon brand follows inside it ("Remanufactured Panasonic", "Retro JORDAN"),
   which is then the brand;
6. a multi-word brand of which the shop repeats only the first word is cut to it, and one that runs on from a
   lexicon brand through capital abbreviations only ("HP AC Power Cord") is cut to the lexicon brand.

Without a scorer the older rule chain runs (`choose`):
1. The brand position is the first token after leading noise (punctuation, numbers, part numbers and the
   `lead_skip` words: "New", "2018", "Original", "[").
2. A lexicon brand starting there is the brand. A lexicon brand elsewhere stands only when it cannot be an
   ordinary word: not in `common_words`, written with a capital, not a number ("Mineral" in "Multi Vitamin &
   Mineral" is not a brand; "Nike" in "Air Jordan by Nike" is).
3. Otherwise the brand is the run of capitalised words at the brand position. The run ends at a stop word
   (gender, size, marketing words: "Men's", "Kids", "XL", "Pack"), at a word that starts a CATEGORY, MATERIAL or
   COLOR candidate, at punctuation other than the marks brands contain (& ' . -), at a number, at a lower-case
   word, after `max_tokens` words, and - when the run is in capitals ("FISH KING Ice Rod") - at the first word
   that is not. Joiners ("by", "of", "&", "and") continue it when a capitalised word follows ("Gentle Souls by
   Kenneth Cole"). A lexicon brand inside the run stretches the run to its end ("Polo Ralph Lauren").
   A one-word run that is an ordinary English word in title case ("Cotton Shirts Men") is no brand.
4. "by <Brand>" / "Brand: <Brand>" anywhere in the title names the brand when step 2 or 3 found none.
"""
from __future__ import annotations

from spacy.language import Language
from spacy.tokens import Doc

from ner import brand_candidates
from ner.brand_model import RULE_WEIGHTS, BrandScorer, Words
from ner.components import groups
from ner.lexicon import read_phrases, read_words, resolve_path

_JOINERS = {"&", "and", "of", "by", "'s", "de", "la", "du", "the", "n", "+"}
_INNER_MARKS = {"-", ".", "'", "!"}
_BY_WORDS = {"by", "from"}

Candidate = tuple  # (start token, end token, label, canonical id); see ner.components.groups


def _word_set(path: str) -> set[str]:
    return {w.casefold() for w in read_phrases(resolve_path(path))} if path else set()


@Language.factory(
    "moon_brand_rules",
    default_config={
        "label": "BRAND",
        "lead_skip": "en/brand_lead_skip.txt",
        "stop_words": "en/brand_stop.txt",
        "common_words": "en/common_words.txt",
        "audience_words": "en/audience_words.txt",
        "descriptor_words": ["en/category_modifier_stop.txt", "en/use_words.txt", "en/origin_words.txt"],
        "max_tokens": 3,
        "blocking_labels": ["CATEGORY", "MATERIAL", "COLOR"],
        "guess": True,
        "scorer": "",
    },
)
def make_brand_rules(nlp: Language, name: str, label: str, lead_skip: str, stop_words: str, common_words: str,
                     audience_words: str, descriptor_words: list[str], max_tokens: int, blocking_labels: list[str],
                     guess: bool, scorer: str) -> "BrandRules":
    rules = BrandRules(label=label, lead_skip=_word_set(lead_skip), stop_words=_word_set(stop_words),
                       common_words=_word_set(common_words), audience_words=_word_set(audience_words),
                       descriptor_words=set().union(*(read_words(resolve_path(path)) for path in descriptor_words)),
                       max_tokens=max_tokens,
                       blocking_labels=set(blocking_labels), guess=guess)
    if scorer:
        rules.use_scorer(scorer)
    return rules


class BrandRules:
    def __init__(self, label: str = "BRAND", lead_skip: set[str] = frozenset(), stop_words: set[str] = frozenset(),
                 common_words: set[str] = frozenset(), audience_words: set[str] = frozenset(), max_tokens: int = 3,
                 blocking_labels: set[str] = frozenset({"CATEGORY", "MATERIAL", "COLOR"}), guess: bool = True,
                 descriptor_words: set[str] = frozenset()):
        self.label = label
        self.lead_skip = lead_skip
        self.stop_words = stop_words
        self.common_words = common_words
        self.audience_words = audience_words
        self.descriptor_words = frozenset(descriptor_words)
        self.max_tokens = max_tokens
        self.blocking_labels = blocking_labels
        self.guess = guess
        self.scorer: BrandScorer | None = None
        self.words = Words(stop_words, audience_words, lead_skip, common_words)

    def use_scorer(self, spec: str) -> None:
        """Choose brands with a scorer: "rules" (`RULE_WEIGHTS`) or a weights file written by `ner.train`."""
        if spec == "rules":
            self.scorer = BrandScorer(dict(RULE_WEIGHTS), self.words)
        else:
            self.scorer = BrandScorer.from_file(resolve_path(spec), self.words)

    def __call__(self, doc: Doc) -> Doc:
        label = self.label
        lexicon = groups.get(doc, groups.LEXICON)
        known = [c for c in lexicon if c[2] == label]
        if known:
            groups.put(doc, groups.LEXICON, [c for c in lexicon if c[2] != label])
            # "Silk" in "100% Silk": the tail of a longer material, category or colour phrase is no brand
            phrases = [c for c in lexicon if c[1] - c[0] > 1 and c[2] in self.blocking_labels]
            if phrases:
                known = [k for k in known if not any(c[0] < k[0] and c[1] >= k[1] for c in phrases)]
            if known and self.stop_words:
                known = self._without_stop_words(doc, lexicon, known)
        hints = groups.get(doc, groups.HINT)
        if self.scorer is not None:
            groups.put(doc, groups.BRAND, [] if hints or not self.guess else self.score(doc, lexicon, known))
            return doc
        blocked = bytearray(len(doc))
        for start, end, other, _ in lexicon:
            if other in self.blocking_labels:
                blocked[start:end] = b"\x01" * (end - start)
        groups.put(doc, groups.BRAND, self.choose(doc, hints, known, blocked))
        return doc

    def _without_stop_words(self, doc: Doc, lexicon: list[Candidate], known: list[Candidate]) -> list[Candidate]:
        """Lexicon brands that are also stop words ("AND", "Pieces" of a catalogue) count only where a title leaves
        no doubt: at the brand position, followed by a gender or size word ("AND Women Black Dress")."""
        toks = groups.tokens(doc)
        lows, stops = toks.lows, self.stop_words
        stopped = [k for k in known if (lows[k[0]] in stops if k[1] - k[0] == 1 else
                                        toks.text(k[0], k[1]).lower() in stops)]
        if not stopped:
            return known
        sure = self.obvious(self.view(doc, lexicon, known)) if self.scorer is not None else None
        return [k for k in known if k not in stopped or (sure is not None and (k[0], k[1]) == (sure.start, sure.end))]

    # -----------------------------------------------------------------------------------------------------
    def view(self, doc: Doc, lexicon: list[Candidate], known: list[Candidate]) -> brand_candidates.TitleView:
        """The token strings and lexicon facts of a title that candidates and features are made of."""
        blocked: list[str | None] = [None] * len(doc)
        for start, end, other, _ in lexicon:
            if other in self.blocking_labels:
                for i in range(start, end):
                    if blocked[i] is None:
                        blocked[i] = other
        # longest first at each start, in title order
        spans = sorted({(c[0], c[1]) for c in known}, key=lambda se: (se[0], se[0] - se[1]))
        return brand_candidates.TitleView.from_tokens(groups.tokens(doc), blocked, spans, self.lead_skip,
                                                      self.common_words, self.descriptor_words)

    def score(self, doc: Doc, lexicon: list[Candidate], known: list[Candidate]) -> list[Candidate]:
        view = self.view(doc, lexicon, known)
        best = self.obvious(view)
        legal = brand_candidates.legal_name(view, self.stop_words) if best is None else None
        if legal is not None:
            best = legal  # a company's full name: no filter or cut applies
        else:
            best = best or brand_candidates.attribution(view, self.stop_words)
            if best is None:
                cands = brand_candidates.candidates(view, self.stop_words)
                best = self.scorer.best(view, cands) if len(cands) > 1 else cands[0]
                if best.kind == brand_candidates.NONE:
                    best = brand_candidates.recurring_lead(view, self.stop_words) or best
                else:
                    best = brand_candidates.longest_lexicon(view, best)
            if best.kind == brand_candidates.NONE or brand_candidates.lone_common_word(view, best) or \
                    brand_candidates.product_words(view, best):
                return []
            if brand_candidates.describing_start(view, best):
                best = brand_candidates.lexicon_inside(view, best)
                if best is None:
                    return []
            best = brand_candidates.abbreviation_tail(view, brand_candidates.recurring_prefix(view, best))
        ids = {(c[0], c[1]): c[3] for c in known}
        return [(best.start, best.end, self.label, ids.get((best.start, best.end), ""))]

    def obvious(self, view: brand_candidates.TitleView) -> brand_candidates.Candidate | None:
        """A lexicon brand at the brand position followed by a gender or size word or nothing ("Nike Men ..."):
        the brand without scoring, as in every such training title."""
        pos = view.position
        for start, end in view.lex_brands:
            if start == pos:
                nxt = view.lows[end] if end < view.n else None
                if nxt is None or nxt in self.audience_words or nxt in self.stop_words:
                    return brand_candidates.Candidate(start, end, brand_candidates.LEAD)
                return None
            if start > pos:
                break
        return None

    def choose(self, doc: Doc, hints: list[Candidate], known: list[Candidate], blocked: bytearray) -> list[Candidate]:
        if hints:
            return []  # the row's catalogue brand is in the title; the resolver takes it from moon_hint
        pos = self.brand_position(doc)
        chosen: list[Candidate] = []
        at_pos = [c for c in known if c[0] == pos]
        guessed = False
        if at_pos:
            chosen.append(max(at_pos, key=lambda c: c[1] - c[0]))
        elif self.guess and pos < len(doc):
            run = self.leading_run(doc, pos, blocked, known)
            if run is not None:
                chosen.append(run)
                guessed = True
        if self.guess and (guessed or not chosen):
            # "... Clear Tape by Scotch MMM600121296": an explicit attribution beats a guess from position.
            by = self.by_brand(doc, blocked, after=chosen[0][1] if chosen else 0)
            if by is not None:
                chosen = [by]
        taken = {i for c in chosen for i in range(c[0], c[1])}
        for cand in known:
            start, end = cand[0], cand[1]
            if start != pos and not taken.intersection(range(start, end)) and self.distinctive(doc[start:end]):
                chosen.append(cand)
                taken.update(range(start, end))
        return chosen

    def brand_position(self, doc: Doc) -> int:
        """Index of the first token after leading noise."""
        for i, tok in enumerate(doc):
            text = tok.text
            if tok.is_punct or tok.is_space or tok.like_num or tok.lower_ in self.lead_skip:
                continue
            if not any(c.isalpha() for c in text):
                continue
            return i
        return len(doc)

    def distinctive(self, span) -> bool:
        """A lexicon brand away from the brand position: only if it cannot be an ordinary word."""
        text = span.text
        if not text[:1].isupper() and not text[:1].isdigit():
            return False
        if len(span) == 1:
            low = span[0].lower_
            if low in self.common_words or low in self.stop_words or span[0].like_num or len(text) < 3:
                return False
        return any(c.isalpha() for c in text)

    def leading_run(self, doc: Doc, start: int, blocked: bytearray, known: list[Candidate]) -> Candidate | None:
        n = len(doc)
        first = doc[start]
        if blocked[start] or not self._capitalised(first) or first.lower_ in self.stop_words or _is_code(first.text):
            return None
        caps = first.text.isupper() and sum(c.isalpha() for c in first.text) >= 2
        end = start + 1
        words = 1
        i = start + 1
        while i < n and words < self.max_tokens:
            tok = doc[i]
            low = tok.lower_
            if tok.text in _INNER_MARKS and not tok.whitespace_ and i + 1 < n and not doc[i - 1].whitespace_:
                i += 1  # "Dr.", "Emergen-C": a mark glued on both sides stays inside
                continue
            if low in _JOINERS:
                nxt = doc[i + 1] if i + 1 < n else None
                if nxt is not None and self._capitalised(nxt) and not blocked[i + 1] and (
                        nxt.lower_ not in self.stop_words):
                    i += 1
                    continue
                break
            if blocked[i] or low in self.stop_words or not self._capitalised(tok) or tok.like_num or _is_code(
                    tok.text):
                break
            if caps and not tok.text.isupper():
                break
            words += 1
            i += 1
            end = i
        # A lexicon brand that starts inside the run takes the run to its end ("Polo Ralph Lauren").
        for cand in known:
            if start < cand[0] < end and cand[1] > end:
                end = cand[1]
        while end > start and doc[end - 1].lower_ in _JOINERS | _INNER_MARKS:
            end -= 1
        # A brand repeated later in the title ("Smead Plain Self Tab ... Smead Guides") is the repeated part.
        if end - start > 1:
            rest = " " + doc[end:].text + " "
            for cut in range(end - 1, start, -1):
                if f" {doc[start:cut].text} " in rest:
                    end = cut
                    break
        if end - start == 1 and not caps and first.lower_ in self.common_words:
            nxt = doc[end] if end < len(doc) else None
            if nxt is None or nxt.lower_ not in self.audience_words:
                return None
        return (start, end, self.label, "")

    def by_brand(self, doc: Doc, blocked: bytearray, after: int = 0) -> Candidate | None:
        """The capitalised run after "by" / "Brand:" ("Clear Tape by Scotch MMM600121296")."""
        n = len(doc)
        for i in range(after, n):
            tok = doc[i]
            low = tok.lower_
            if low in _BY_WORDS or (low == "brand" and i + 1 < n and doc[i + 1].text == ":"):
                j = i + 1 if low in _BY_WORDS else i + 2
                if j < n and self._capitalised(doc[j]) and not blocked[j] and doc[j].lower_ not in self.stop_words:
                    end = j + 1
                    while end < n and end - j < self.max_tokens and self._capitalised(doc[end]) and not blocked[end] \
                            and doc[end].lower_ not in self.stop_words and not _is_code(doc[end].text):
                        end += 1
                    if _is_code(doc[j].text):
                        continue
                    return (j, end, self.label, "")
        return None

    @staticmethod
    def _capitalised(tok) -> bool:
        text = tok.text
        return text[:1].isupper() and any(c.isalpha() for c in text)


def _is_code(text: str) -> bool:
    """Part numbers and SKUs ("MMM600121296", "LC10EBK", "PG-240XL"): three digits, or letters and digits in
    four or more characters. "3M" and "365" are not codes."""
    digits = sum(c.isdigit() for c in text)
    return digits >= 3 or (digits > 0 and len(text) >= 4 and any(c.isalpha() for c in text))

"""`moon_color_rules`: colour phrases that a colour lexicon lists only in part.

Titles name a shade of a colour ("Dark Brown", "Bright Green", "Matte Black") and colourways of several colours
written as one value ("Black/White", "Black/Navy/Gray"). From the COLOR matches of `moon_lexicon` this component
adds, as further COLOR candidates:

1. a colour with the shade word before it (`shades`, a word list: "dark", "light", "bright", "matte", ...), the
   id the shade joined to the colour's id ("dark_brown") where no lexicon lists the phrase;
2. colours glued together by one of `join_marks` ("/", "-") as one colour value, the ids joined by "/"
   ("Black/White": "black/white", "White-Red": "white/red"). A shade word glued by a hyphen counts as in step 1
   ("Sky-Blue": "sky_blue").

3. with `variant_field` on, the colour field of a title written as "product, colour, size" (Amazon's variant
   titles: "Crocs Women's Jayna Ballet Flat,Nautical Navy,4 M US", "Stacy Adams Men's Templin Slip-On,Cognac,10.5 M"):
   the comma-separated field before a last field that is a size (`SIZE_FIELD`: "8 M US", "10.5 D(M) US", "6 UK/8 M
   US", "One Size") is one colour value as the shop names it ("Nautical Navy", "Brown Multi", "Cognac"), id its
   words joined by "_". The field is letters only (with "/", "-", ".", "'"), at most four words; it ends before a
   phrase of another lexicon label, a brand or a category found in it ("Tan Leather": the colour "Tan", the
   material "Leather"), and is no colour when one begins it. A field
   without a known colour becomes one only when nothing else was found in it.

The shorter matches stay candidates, so that where a brand or category takes a word of the longer one the resolver
still finds the plain colour (where the brand "Mountain Light" takes "Light" of "Light Red", "Red"). The component
runs before the resolver and after the brand and category rules, which see the lexicon's colour matches unchanged.
"""
from __future__ import annotations

import re

from spacy.language import Language
from spacy.tokens import Doc

from ner.components import groups
from ner.lexicon import read_words, resolve_path


# A size as the last field of a variant title: "8 M US", "10.5 D(M) US", "7.5 W", "13 4E US", "6 UK/8 M US",
# "0.5 M US Infant", "36 (US Women's 5.5-6)", "US 8", "5", "One Size". Case matters: "3 oz", "2 Pk" are no sizes.
_SIZE = (r"\d{1,2}(?:\.5)?(?:\s*(?:-|to)\s*\d{1,2}(?:\.5)?)?"  # 8, 10.5, 5-6
         r"(?:\s*(?:[2-6]?E{1,4}|X?[MWDBCN]{1,2}|A{1,3})(?:\s*\([MWDB]\))?)?")  # the width: M, 4E, D(M)
_SIZE_WORDS = "Wide|Narrow|Regular|Infant|Toddler|Little|Big|Kids?|Youth|YTH|Men|Women"
SIZE_FIELD = re.compile(rf"(?:(?:US|UK|EU)\s*)?{_SIZE}(?:\s*(?:US|UK|EU)\b(?:\s*/\s*{_SIZE}(?:\s*(?:US|UK|EU)\b)?)?)?"
                        rf"(?:\s+(?:{_SIZE_WORDS})){{0,2}}(?:\s*\([^()]*\))?|(?i:one size)")
_FIELD_MARKS = frozenset("/-.'")
_FIELD_WORDS = 4


@Language.factory("moon_color_rules", default_config={"label": "COLOR", "shades": "en/color_shades.txt",
                                                       "join_marks": ["/", "-"], "variant_field": True})
def make_color_rules(nlp: Language, name: str, label: str, shades: str, join_marks: list[str],
                     variant_field: bool) -> "ColorRules":
    return ColorRules(label=label, shades=read_words(resolve_path(shades)) if shades else set(),
                      join_marks=set(join_marks), variant_field=variant_field)


class ColorRules:
    def __init__(self, label: str = "COLOR", shades: set[str] = frozenset(),
                 join_marks: set[str] = frozenset({"/", "-"}), variant_field: bool = True):
        self.label = label
        self.shades = frozenset(shades)
        self.join_marks = frozenset(join_marks)
        self.variant_field = variant_field

    def __call__(self, doc: Doc) -> Doc:
        lexicon = groups.get(doc, groups.LEXICON)
        label = self.label
        colors = [c for c in lexicon if c[2] == label]
        toks = groups.tokens(doc)
        field = self.colour_field(doc, toks, lexicon, colors) if self.variant_field else None
        if field is not None:
            lexicon = lexicon + [field]
            groups.put(doc, groups.LEXICON, lexicon)
            colors.append(field)
        if not colors:
            return doc
        lows, spaces, texts = toks.lows, toks.spaces, toks.texts
        # 1. the shade word before a colour
        shades = self.shades
        shaded = []
        for start, end, _, ent_id in colors:
            if start == 0:
                continue
            k = start - 1  # the shade word: before the colour with a space, or glued by a hyphen ("Sky-Blue")
            if texts[k] == "-" and not spaces[k] and k > 0 and not spaces[k - 1]:
                k -= 1
            elif not spaces[k]:
                continue
            if lows[k] in shades and not any(c[0] == k and c[1] == end for c in colors):
                shaded.append((k, end, label, f"{lows[k]}_{ent_id}" if ent_id else lows[k]))
        added = shaded
        # 2. colours glued together by a join mark: the longest reading of each colour, left to right
        if not self.join_marks.isdisjoint(texts):
            added = shaded + self.colourways(colors + shaded, texts, lows, spaces)
        if added:
            groups.put(doc, groups.LEXICON, lexicon + added)
        return doc

    def colour_field(self, doc: Doc, toks, lexicon: list[tuple], colors: list[tuple]) -> tuple | None:
        """The colour field of a "product, colour, size" title as one COLOR candidate (rule 3), or None."""
        texts = toks.texts
        if texts.count(",") < 2:  # most titles: one C-level scan, no list made
            return None
        before, last = [i for i, text in enumerate(texts) if text == ","][-2:]
        start, end = before + 1, last
        if start >= end or not SIZE_FIELD.fullmatch(toks.text(last + 1, len(texts))):
            return None
        words = 0
        for i in range(start, end):
            text = texts[i]
            if text in _FIELD_MARKS:
                continue
            if not text.isalpha():
                return None
            words += 1 if i == start or toks.spaces[i - 1] else 0
        if not words or words > _FIELD_WORDS:
            return None
        while texts[start] in _FIELD_MARKS:
            start += 1
        label = self.label
        others = [c for c in lexicon if c[2] != label]
        others += groups.get(doc, groups.BRAND) + groups.get(doc, groups.CATEGORY)
        for s, e, *_ in others:
            if s < end and e > start:
                if s <= start:
                    return None  # something else begins the field (or runs into it)
                end = s  # the colour ends before another label's phrase, a brand or a category in the field
        while end > start and texts[end - 1] in _FIELD_MARKS:
            end -= 1
        inside = [c for c in colors if c[0] >= start and c[1] <= end]
        if end <= start or (not inside and end != last) or any(c[0] == start and c[1] == end for c in inside):
            return None  # a field with no known colour counts only when nothing else was found in it
        return (start, end, label, "_".join(toks.text(start, end).lower().split()))

    def colourways(self, colors: list[tuple], texts: list[str], lows: list[str], spaces: list[bool]) -> list[tuple]:
        longest: dict[int, tuple] = {}
        for cand in colors:
            best = longest.get(cand[0])
            if best is None or cand[1] > best[1]:
                longest[cand[0]] = cand
        out = []
        covered = 0
        for first in sorted(longest.values()):
            if first[0] < covered:
                continue  # inside a colourway already made
            run = [first]
            while True:
                mark = run[-1][1]
                nxt = longest.get(mark + 1)
                if nxt is None or texts[mark] not in self.join_marks or spaces[mark - 1] or spaces[mark]:
                    break
                run.append(nxt)
            if len(run) > 1:
                joined_id = "/".join(c[3] or lows[c[0]] for c in run)
                out.append((run[0][0], run[-1][1], self.label, joined_id))
                covered = run[-1][1]
        return out

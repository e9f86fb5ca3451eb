"""`moon_color_rules`: colour phrases that a colour lexicon lists only in part.

Titles name a shade of a colour ("Dark Brown", "Bright Green", "Matte Black") and colourways of several colours
written as one value ("Black/White", "Black/Navy/Gray"). From the COLOR matches of `moon_lexicon` this component
adds, as further COLOR candidates:

1. a colour with the shade word before it (`shades`, a word list: "dark", "light", "bright", "matte", ...), the
   id the shade joined to the colour's id ("dark_brown") where no lexicon lists the phrase;
2. colours glued together by one of `join_marks` ("/", "-") as one colour value, the ids joined by "/"
   ("Black/White": "black/white", "White-Red": "white/red"). A shade word glued by a hyphen counts as in step 1
   ("Sky-Blue": "sky_blue").

The shorter matches stay candidates, so that where a brand or category takes a word of the longer one the resolver
still finds the plain colour (where the brand "Mountain Light" takes "Light" of "Light Red", "Red"). The component
runs before the resolver and after the brand and category rules, which see the lexicon's colour matches unchanged.
"""
from __future__ import annotations

from spacy.language import Language
from spacy.tokens import Doc

from ner.components import groups
from ner.lexicon import read_words, resolve_path


@Language.factory("moon_color_rules", default_config={"label": "COLOR", "shades": "en/color_shades.txt",
                                                       "join_marks": ["/", "-"]})
def make_color_rules(nlp: Language, name: str, label: str, shades: str, join_marks: list[str]) -> "ColorRules":
    return ColorRules(label=label, shades=read_words(resolve_path(shades)) if shades else set(),
                      join_marks=set(join_marks))


class ColorRules:
    def __init__(self, label: str = "COLOR", shades: set[str] = frozenset(),
                 join_marks: set[str] = frozenset({"/", "-"})):
        self.label = label
        self.shades = frozenset(shades)
        self.join_marks = frozenset(join_marks)

    def __call__(self, doc: Doc) -> Doc:
        lexicon = groups.get(doc, groups.LEXICON)
        label = self.label
        colors = [c for c in lexicon if c[2] == label]
        if not colors:
            return doc
        toks = groups.tokens(doc)
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

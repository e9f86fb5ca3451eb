"""The spans of a title that could be its BRAND, and what a scorer needs to know about each.

Pure Python on token strings (no spaCy objects), so the learned brand scorer (`ner.brand_model`), its trainer
(`ner.train`) and the brand component share one definition of "candidate":

- `lead`: the words at the brand position (the first word after leading noise: punctuation, numbers, product
  codes, quantities with their units ("20g", "5L", "2 Pcs"), "New", "2018", "Original"), one candidate per
  length, 1 to `max_words` words. The run stops at marks
  that never sit inside a brand (, | ( ) : ; / and a free-standing dash), at numbers, product codes and words a
  lexicon knows as a category; a lower-case ordinary word ("cheap") starts no run; marks
  glued on both sides stay inside ("Dr. Scholl's", "Oral-B", "AT-A-GLANCE"), and so does a glued possessive
  ("Trader Joe's"); no run ends on an initial ("A. Jaffe", never "A."), and a capitalised run ends at a word in
  lower case or at a describing word ("BATFOX mtb man cycling shoe", "Shieny Boho Vintage Women": sellers run on
  from their brand into search words).
- `lex`: every lexicon brand in the title (also at the brand position, where it may be longer than the run).
- `by`: the capitalised words after "by" / "from" / "Brand:" ("... Clear Tape by Scotch MMM600121296").
- `none`: the title has no brand.

A candidate is (start, end, kind); `end` is exclusive, in tokens.
"""
from __future__ import annotations

from typing import NamedTuple

# Marks that end a brand wherever they stand.
HARD_STOPS = frozenset({",", "|", "(", ")", "[", "]", "{", "}", ":", ";", "/", "\\", '"', "*", "~", "=", "<", ">",
                        "#", "@", "!", "?", "…"})
# Marks that stay inside a brand when glued on both sides ("Dr. Scholl's", "Oral-B", "M&M").
INNER_MARKS = frozenset({"-", ".", "'", "&", "+", "®", "™", "°"})
# Words that join two capitalised parts of one brand ("Gentle Souls by Kenneth Cole", "Garden of Life").
JOINERS = frozenset({"&", "and", "of", "by", "de", "la", "du", "the", "n", "'n", "+", "for", "da", "von", "van"})
BY_WORDS = frozenset({"by", "from"})

NONE = "none"
LEAD = "lead"
LEX = "lex"
BY = "by"


# marks of a title written in phrases, as web shops write offers
_OFFER_MARKS = frozenset({",", ";", "|", "(", "by", "from"})


class Candidate(NamedTuple):
    start: int
    end: int
    kind: str


class TitleView:
    """Token strings of one title and the lexicon facts the brand rules read; built once per title."""

    __slots__ = ("texts", "lows", "space_after", "n", "blocked", "lex_brands", "position", "descriptors", "_common",
                 "_shapes")

    def __init__(self, texts: list[str], space_after: list[bool], blocked: list[str | None],
                 lex_brands: list[tuple[int, int]], lead_skip: frozenset | set, common_words: frozenset | set,
                 lows: list[str] | None = None, descriptors: frozenset | set = frozenset()):
        self.texts = texts
        self.lows = lows if lows is not None else [t.lower() for t in texts]
        self.space_after = space_after
        self.n = len(texts)
        # per token: the label (CATEGORY, MATERIAL, COLOR) of a lexicon match covering it, or None
        self.blocked = blocked
        self.lex_brands = lex_brands
        self._common = common_words
        # lower-case words that describe a product (its use, season or properties: "outdoor", "tactical", "winter",
        # "portable"), as a category, material or colour word does
        self.descriptors = descriptors
        self._shapes: list[str | None] = [None] * self.n
        self.position = brand_position(self, lead_skip)

    @classmethod
    def from_tokens(cls, toks, blocked: list[str | None], lex_brands: list[tuple[int, int]], lead_skip,
                    common_words, descriptors=frozenset()) -> "TitleView":
        """A view of a doc's `ner.components.groups.Tokens`."""
        return cls(toks.texts, toks.spaces, blocked, lex_brands, lead_skip, common_words, toks.lows, descriptors)

    def is_common(self, i: int) -> bool:
        return self.lows[i] in self._common

    def is_plain(self, i: int) -> bool:
        """Whether token i is a mark, a number or an ordinary word not written in upper case (not "TBH", "HP")."""
        text = self.texts[i]
        return not has_alpha(text) or (self.is_common(i) and not text.isupper())

    def ordinary(self, start: int, end: int) -> bool:
        """Whether tokens [start, end) are all plain (`is_plain`)."""
        return all(self.is_plain(k) for k in range(start, end))

    def is_offer(self) -> bool:
        """Whether the title is written like a web-shop offer, in phrases ("..., 25/Pack", "... | Shop", "... - SKU",
        "... by Brand"), not as a keyword list ("Warm Outdoor Ski Jacket Women Winter Jacket Warm ...")."""
        for i, low in enumerate(self.lows):
            if low in _OFFER_MARKS or (low == "-" and i and self.space_after[i - 1] and self.space_after[i]):
                return True
        return False

    def glued_before(self, i: int) -> bool:
        return i > 0 and not self.space_after[i - 1]

    def recurs(self, start: int, end: int) -> bool:
        """Whether the words of [start, end) occur again, in the same order (any case), after `end`."""
        size = end - start
        if size <= 0:
            return False
        target = self.lows[start:end]
        return any(self.lows[k:k + size] == target for k in range(end, self.n - size + 1))

    def hyphen_goes_on(self, i: int) -> bool:
        """Whether token i is a hyphen glued to words on both sides, the one after it without digits: a span
        ending before it cuts a name in two ("Bunn" of "Bunn-O-Matic"; "BRS" of "BRS-H22" is a brand and a model)."""
        return i + 1 < self.n and self.texts[i] == "-" and not self.space_after[i - 1] and not self.space_after[i] \
            and self.texts[i + 1].isalpha()

    def span_text(self, start: int, end: int) -> str:
        parts = []
        for i in range(start, end):
            parts.append(self.texts[i])
            if i < end - 1 and self.space_after[i]:
                parts.append(" ")
        return "".join(parts)


def has_alpha(text: str) -> bool:
    """Whether a token has a letter ("X5" yes, "2018" and "-" no)."""
    return text.isalpha() or text.lower() != text.upper()


def uncased(text: str) -> bool:
    """Whether a token has letters but none with a case (Arabic, Hebrew, Chinese, Japanese, Korean): capitals are
    how an unknown brand is guessed, and such a word never shows them, so it is neither one nor part of one."""
    return text.lower() == text.upper() and any(ch.isalpha() for ch in text)


def is_code(text: str) -> bool:
    """Part numbers and SKUs ("MMM600121296", "LC10EBK", "B21"): three digits, or letters and digits in three or
    more characters. "3M", "X5" and ordinals ("21st") are not codes."""
    if text.isalpha():
        return False  # most words: no digit at all
    if text.isascii():
        digits = len(text) - len(text.translate(_NO_DIGITS))
    else:
        digits = sum(c.isdigit() for c in text)
    if digits and text.lower().endswith(_ORDINAL) and text[:-2].isdigit():
        return False
    return digits >= 3 or (digits > 0 and len(text) >= 3 and any(c.isalpha() for c in text))


_ORDINAL = ("st", "nd", "rd", "th")
_NO_DIGITS = str.maketrans("", "", "0123456789")
# Packaging words of a leading quantity ("4 Boxes of Kimbo", "2 Packs Douwe Egberts", "12Pcs"): lead noise.
QUANTITY_WORDS = frozenset({"box", "boxes", "pack", "packs", "pcs", "pc", "piece", "pieces", "pair", "pairs", "set",
                            "sets", "lot", "lots", "bag", "bags", "bottle", "bottles", "count", "ct", "x", "of"})


def chunk_end(view: TitleView, i: int) -> int:
    """End of the white-space separated chunk that token i starts ("12Pcs/Lot" is one chunk of 4 tokens)."""
    j = i
    while j < view.n - 1 and not view.space_after[j]:
        j += 1
    return j + 1


def brand_position(view: TitleView, lead_skip) -> int:
    """Index of the first token after leading noise: marks, numbers, product codes (also hyphenated ones that
    start with digits: "400-AJOU Dell ..."), `lead_skip` words."""
    texts = view.texts
    i = 0
    n = view.n
    after_number = False
    while i < n:
        text = texts[i]
        if i + 1 < n and f"{view.lows[i]} {view.lows[i + 1]}" in lead_skip:
            i += 2  # "Free Shipping", "High Quality"
            continue
        if not has_alpha(text) or view.lows[i] in lead_skip:
            if text[:1].isdigit() and not view.space_after[i] and i + 1 < n and texts[i + 1] == "-":
                # a hyphenated part number that starts with digits ("400-AJOU Dell ...") is skipped whole, unless
                # a lexicon brand starts in it
                end = chunk_end(view, i)
                if is_code("".join(texts[i:end])) and not any(i < s < end for s, _ in view.lex_brands):
                    i = end
                    continue
            after_number = after_number or any(c.isdigit() for c in text)
            i += 1
            continue
        low = view.lows[i]
        # a unit after a number ("20" "g", "500 ml") or with it in one token ("5L", "2pcs"); "3" "M" is a brand
        if (after_number and low in _MEASURE_WORDS or _number_with_unit(low)) and not _starts_brand(view, i):
            after_number = True
            i += 1
            continue
        end = chunk_end(view, i)
        chunk = "".join(texts[i:end])
        if is_code(chunk) and not any(view.lows[k] in _KEEP_PREFIX for k in range(i, end)):
            i = end
            continue
        return i
    return n


# Units of a leading quantity ("20g", "5L", "3x", "500 ml"): lead noise, never the brand.
UNIT_WORDS = frozenset({"g", "kg", "mg", "ml", "l", "cl", "oz", "lb", "lbs", "mm", "cm", "m", "km", "in", "inch",
                        "ft", "w", "kw", "v", "mah", "gb", "tb", "mb", "x", "pk", "qt", "gal", "yd", "cc", "hz", "khz",
                        "mhz", "ghz", "mbps", "gbps"})
_MEASURE_WORDS = UNIT_WORDS | QUANTITY_WORDS


def _number_with_unit(low: str) -> bool:
    """Whether a lower-case token is digits followed by a unit or quantity word ("5l", "3x", "2pcs")."""
    digits = len(low) - len(low.lstrip("0123456789"))
    return 0 < digits < len(low) and low[digits:] in _MEASURE_WORDS


def _starts_brand(view: TitleView, i: int) -> bool:
    """Whether token i is, alone or glued to the number before it, a brand of `_KEEP_PREFIX` ("3M" as "3" "M")."""
    low = view.lows[i]
    return low in _KEEP_PREFIX or (i > 0 and not view.space_after[i - 1] and view.lows[i - 1] + low in _KEEP_PREFIX)


# Chunks that look like codes but start a brand ("3M", "7UP"): kept by brand_position.
_KEEP_PREFIX = frozenset({"3m"})


# Roman numerals that number a model's generation ("PANTHER II"); not I, V and X, which are also letters of names
_MODEL_NUMERALS = frozenset({"II", "III", "IV", "VI", "VII", "VIII", "IX", "XI", "XII", "XIII", "XIV", "XV"})


def lead_ends(view: TitleView, start: int, max_words: int, stop_words=frozenset(),
              lower_ends: bool = False) -> list[int]:
    """Possible ends of a brand starting at `start`: after each of its first `max_words` words, up to a mark that
    never sits inside a brand, a number or code, or a `stop_words` word (gender, size, "Pack", ...). With
    `lower_ends`, a word in lower case after a capitalised start also ends it ("BATFOX mtb man cycling shoe",
    "Detector winter thicken baby ..."): sellers write their brand capitalised and run on into search words; so
    does a describing word (`TitleView.descriptors`) not written in capitals ("Boodun Outdoor Sports Gloves",
    "Innovera Remanufactured Ink"; "CRZ YOGA" stays whole)."""
    texts = view.texts
    n = view.n
    ends = []
    if start >= n or view.lows[start] in stop_words:
        return ends
    words = 0
    i = start
    while i < n and words < max_words:
        text = texts[i]
        if uncased(text):
            break
        if i > start:
            if text in HARD_STOPS:
                break
            if text in INNER_MARKS or text == "'s":
                glued_left = view.glued_before(i)
                glued_right = i + 1 < n and not view.space_after[i]
                if text == "'s" and glued_left:
                    ends.append(i + 1)  # "Trader Joe's"
                    i += 1
                    continue
                if glued_left and glued_right:
                    i += 1
                    continue
                if text in ("®", "™") and glued_left:
                    ends.append(i + 1)
                    i += 1
                    continue
                if text == "." and glued_left:
                    ends.append(i + 1)  # "Co.", "Inc."
                    i += 1
                    continue
                if text == "&" and not glued_left and i + 1 < n:
                    i += 1  # "Arm & Hammer"
                    continue
                break
            if view.lows[i] in JOINERS and not view.glued_before(i):
                # a joiner continues the brand only towards a capitalised word
                if i + 1 < n and texts[i + 1][:1].isupper():
                    i += 1
                    continue
                break
        if not has_alpha(text):
            break
        if i > start:
            if is_code(text) or (view.glued_before(i) and is_code(texts[i - 1] + text)):
                break
            if lower_ends and text.islower() and text.isalpha() and not view.glued_before(i) and \
                    not texts[start].islower():
                break
            if lower_ends and view.lows[i] in view.descriptors and not text.isupper():
                break  # "Shieny Boho Vintage Women ...", "Boodun Outdoor Sports Gloves"; not "CRZ YOGA"
            if view.lows[i] in stop_words and not view.glued_before(i):
                break
            if text in _MODEL_NUMERALS and not view.glued_before(i):
                break  # a model's generation: "ECOODA PANTHER II", "ZUSA XII Elite"
            # the product word ends the brand ("Adidas shoes", "Toread Gloves", "T-Shirts"), but not as the second
            # half of a hyphenated name ("by Redi-Tag RTG31001")
            if view.blocked[i] == "CATEGORY" and not (texts[i - 1] == "-" and view.glued_before(i) and
                                                      len(texts[i - 2]) > 1 and view.blocked[i - 2] is None):
                break
        words += 1
        i += 1
        # a hyphen glued on both sides goes on with the name ("Bunn-O-Matic", not "Bunn"), and so does an initial
        # ("A. Jaffe", not "A.")
        if not view.hyphen_goes_on(i) and not (len(text) == 2 and text[1] == "." and text[0].isalpha()):
            ends.append(i)
    return ends


def candidates(view: TitleView, stop_words=frozenset(), max_words: int = 5, max_lex: int = 4) -> list[Candidate]:
    """All BRAND candidates of a title, `none` first."""
    out = [Candidate(0, 0, NONE)]
    pos = view.position
    seen = set()
    # A word that a lexicon knows as a category, material or colour starts no guessed brand ("Black Shorts"),
    # nor does an ordinary word in lower case ("cheap", "no"); a lexicon brand there still stands ("Red Tape
    # Shoes").
    if pos < view.n and not view.blocked[pos] and not (view.texts[pos][:1].islower() and view.is_common(pos)):
        for end in lead_ends(view, pos, max_words, stop_words, lower_ends=True):
            out.append(Candidate(pos, end, LEAD))
            seen.add((pos, end))
    for start, end in view.lex_brands[:max_lex]:
        if start > pos and view.ordinary(start, end):
            continue  # away from the brand position, ordinary words are read as words ("... LED Light Mountain Road")
        if (start, end) not in seen and not view.hyphen_goes_on(end):  # not "Bunn" of "Bunn-O-Matic"
            # a lexicon brand that starts in the leading noise ("365 by Whole Foods Market") stands at the position
            kind = LEAD if start < pos < end else LEX
            out.append(Candidate(start, end, kind))
            seen.add((start, end))
    for i in range(pos, view.n - 1):
        low = view.lows[i]
        if low in BY_WORDS or (low == "brand" and view.texts[i + 1] == ":"):
            j = i + 1 if low in BY_WORDS else i + 2
            if j < view.n and view.texts[j][:1].isupper() and not is_code(view.texts[j]):
                for end in lead_ends(view, j, 3, stop_words):
                    if (j, end) not in seen:
                        out.append(Candidate(j, end, BY))
                        seen.add((j, end))
    return out


# ---------------------------------------------------------------------------------------------------------
# Web-shop attributions: where an offer names its brand outright
# ---------------------------------------------------------------------------------------------------------
def attribution(view: TitleView, stop_words=frozenset()) -> Candidate | None:
    """The brand a web-shop offer names outright, or None:
    "... Clear Tape by Scotch MMM600121296 - OnTimeSupplies.com" (by + brand + part number, dash, bar, parenthesis
    or end: "... Cafe Style Blend by Cherie Sweet Heart (16 oz)", "... Toothbrush by The Humble Co. (5pk)") and
    "Lismore Red Brandy, Pair - Waterford | US" (dash + brand + the shop's "|")."""
    n = view.n
    texts, lows = view.texts, view.lows
    for i in range(view.position, n - 1):
        low = lows[i]
        if low in BY_WORDS or (low == "brand" and texts[i + 1] == ":"):
            j = i + 1 if low in BY_WORDS else i + 2
            if j >= n or not (texts[j][:1].isupper() or texts[j][:1].isdigit()) or is_code(texts[j]):
                continue
            # "by The Humble Co.": the article belongs to the name that follows it
            lead = j + 1 if lows[j] == "the" and j + 1 < n and texts[j + 1][:1].isupper() else j
            ends = lead_ends(view, lead, 3, stop_words)
            if not ends:
                continue
            end = ends[-1]
            if end >= n or texts[end] in ("|", "(") or (texts[end] == "-" and view.glued_before(end) is False) or \
                    is_code(texts[end]) or is_code("".join(texts[end:chunk_end(view, end)])):
                return Candidate(j, end, BY)
        elif texts[i] == "-" and view.space_after[i] and not view.glued_before(i) and i + 1 < n:
            j = i + 1
            if not texts[j][:1].isupper() or is_code(texts[j]):
                continue
            ends = lead_ends(view, j, 4, stop_words)
            if ends and ends[-1] < n and texts[ends[-1]] == "|":
                return Candidate(j, ends[-1], BY)
    return None


def longest_lexicon(view: TitleView, best: Candidate) -> Candidate:
    """The longest lexicon brand that begins where the chosen brand begins and runs past it: a lexicon that knows
    both the maker and its product line (`Philips Sonicare`, `Philips Sonicare 2 Series`) names the line where the
    title has it, as every lexicon match is the longest at its start."""
    for start, end in view.lex_brands:  # longest first at each start
        if start == best.start:
            return Candidate(start, end, LEX) if end > best.end else best
        if start > best.start:
            break
    return best


def recurring_lead(view: TitleView, stop_words=frozenset()) -> Candidate | None:
    """The word at the brand position when it comes back later, written the same way ("Universal Six Section
    Pressboard Folder Universal Folder - UNV10281"): web shops repeat the brand before the product word."""
    pos = view.position
    if pos >= view.n or view.blocked[pos] or view.lows[pos] in stop_words:
        return None
    word = view.texts[pos]
    if not word[:1].isupper() or not has_alpha(word) or len(word) < 2:
        return None
    end = pos + 1
    while view.hyphen_goes_on(end):
        end += 2  # the whole hyphenated name ("Ice-O-Matic ... Ice-O-Matic Maker")
    size = end - pos
    name = view.texts[pos:end]
    for k in range(end + 1, view.n - size + 1):
        if view.texts[k:k + size] == name and not view.glued_before(k):
            return Candidate(pos, end, LEAD)
    return None


# Legal forms that end a company name ("Clean Coffee Co", "Focus Foodservice LLC", "Bigelow Tea Company").
LEGAL_FORMS = frozenset({"co", "inc", "llc", "ltd", "corp", "company", "corporation", "gmbh"})
# words that end company names ("Safco Products", "MMF Industries", "Trend Enterprises", "SBR Nutrition", "Jaguar
# Plastics"): part of the brand
_COMPANY_WORDS = LEGAL_FORMS | {"products", "industries", "packaging", "group", "enterprises", "brands",
                                "international", "manufacturing", "labs", "laboratories", "foodservice",
                                "nutrition", "naturals", "organics", "cosmetics", "skincare",
                                "plastics", "pharmaceuticals", "milling", "farms", "foods"}


def legal_name(view: TitleView, stop_words=frozenset()) -> Candidate | None:
    """The capitalised words at the brand position up to a legal form ("Clean Coffee Co Whole Bean Coffee",
    "Bigelow Tea Company Assorted Packs", "Focus Foodservice LLC FPS2124SOGN Shelving"): a company's name, so the
    brand, product words in it included. At least one word comes before the legal form ("Inc 5 Women Heels" is
    left to the scorer), and the legal form is a word of its own ("Co-wash" is none). A name that is no ordinary
    word followed by a company word is one too ("Safco Products 5213BL", "MMF Industries Index Card File"; not
    "Cleaning Products")."""
    pos = view.position
    texts, lows = view.texts, view.lows
    n = view.n
    i = pos
    words = 0
    while i < n and words < 5:
        text = texts[i]
        if i > pos and lows[i] in JOINERS and not view.glued_before(i):
            i += 1
            continue
        if not text[:1].isupper() or is_code(text) or (i > pos and view.glued_before(i)) or lows[i] in stop_words:
            return None
        end = i + 1
        if end < n and texts[end] == "." and not view.space_after[i]:
            end += 1  # "Co.", "Inc."
        # a legal form after one or more words; a company word ("Products", "Industries") right after a name
        if words and (end >= n or view.space_after[end - 1] or texts[end] in HARD_STOPS) and (
                lows[i] in LEGAL_FORMS or (words == 1 and lows[i] in _COMPANY_WORDS and not view.is_common(pos))):
            return Candidate(pos, end, LEAD)
        words += 1
        i = end
    return None


def lone_common_word(view: TitleView, cand: Candidate) -> bool:
    """Whether a guessed brand is one ordinary word, not in upper case, that no lexicon knows and that a web-shop
    offer does not repeat ("Adjustable Sports Bras ...", "Warm Outdoor Sport Windproof Ski Jacket"): no brand, not
    "Warm". Shops repeat the brand ("Quality Envelopes, 10/Box Quality Envelopes"); keyword lists repeat search
    words ("Warm Outdoor Ski Jacket Women Winter Jacket Warm ...", "Golf Hat Clip Golf Ball Marker").
    A describing word (`TitleView.descriptors`) is no brand even when the title repeats it or it is no ordinary
    word: keyword lists repeat their use words ("Cycling Glasses ... Cycling Eyewear", "Fishing Clothing ...
    Fishing Shirt"), and "Autumn" or "Trekking" begin descriptions, not brand names."""
    if cand.kind != LEAD or cand.end - cand.start != 1 or view.texts[cand.start].isupper():
        return False  # an upper-case word may be an initialism ("TBH")
    if (cand.start, cand.end) in view.lex_brands:
        return False
    low = view.lows[cand.start]
    if low in view.descriptors:
        return True
    return view.is_common(cand.start) and not (low in view.lows[cand.end:] and view.is_offer())


def product_words(view: TitleView, cand: Candidate) -> bool:
    """Whether a guessed brand of several words only describes the product: each word is an ordinary word not in
    upper case, a word a lexicon knows as a category, material or colour, or a describing word
    (`TitleView.descriptors`), at least one is of the latter two kinds, no lexicon knows the span as a brand and
    the title does not repeat it ("Soft Leather Wallet", "Summer Canvas Shoes", "Portable Stainless Steel Stove",
    "Outdoor Tactical Molle Pouch", "Winter Warm Women Loafers"): no brand."""
    if cand.kind != LEAD or cand.end - cand.start < 2 or (cand.start, cand.end) in view.lex_brands:
        return False
    described = False
    descriptors = view.descriptors
    for i in range(cand.start, cand.end):
        if view.blocked[i] or view.lows[i] in descriptors:
            described = True
        elif not view.is_plain(i):
            return False
    return described and not view.recurs(cand.start, cand.end)


_SHOP_WORDS = frozenset({"shop", "by", "from"})


def recurring_prefix(view: TitleView, cand: Candidate) -> Candidate:
    """A multi-word brand cut to its first words when only those come back later ("Tacori Petite Crescent ...
    Shop Tacori HT2546", "ReStockIt Acco Tabs"): the shop repeats the brand, not the product line."""
    if cand.end - cand.start < 2 or cand.kind == NONE:
        return cand
    if view.recurs(cand.start, cand.end):
        return cand  # the whole brand comes back
    # a shop's "Shop <Brand>" names the whole brand; otherwise the cut needs a second word that looks like a
    # product-line word, not part of a name ("Rediform Money Receipt Book ... Rediform Book" but "Advance Tabco
    # ... Advance Sink"), and a first word that is a name: an ordinary word comes back as that word ("Quality
    # Park ... Quality Envelopes", "Red Rose Red Nightdress", "Pure Synergy Pure Radiance C")
    second = cand.start + 1
    if view.glued_before(second):
        return cand  # one word: "Bunn-O-Matic ... Bunn-O-Matic Dispenser" is not cut to "Bunn"
    line_word = (view.is_common(second) or view.blocked[second] is not None or not view.texts[second].isalpha()) \
        and view.lows[second] not in _COMPANY_WORDS
    first = view.texts[cand.start]
    for k in range(cand.end, view.n):
        if view.texts[k] == first and not view.glued_before(k) and (k + 1 >= view.n or view.lows[k + 1] !=
                                                                     view.lows[cand.start + 1]):
            if (line_word and not view.is_common(cand.start)) or view.lows[k - 1] in _SHOP_WORDS:
                return Candidate(cand.start, cand.start + 1, cand.kind)
    return cand


def abbreviation_tail(view: TitleView, cand: Candidate) -> Candidate:
    """A candidate that runs on from a lexicon brand through capital abbreviations only, each of at most three
    letters ("HP AC Power Cord", "HP H F200", "NIKE NSW JKT WVN Jacket"), cut to the lexicon brand: model and
    part abbreviations after a known brand are not part of its name. A candidate that is itself a lexicon
    brand stands ("Calvin Klein", "Lee Cooper")."""
    if cand.kind == NONE or cand.end - cand.start < 2 or (cand.start, cand.end) in view.lex_brands:
        return cand
    for start, end in view.lex_brands:
        if start > cand.start:
            break
        if start == cand.start and end < cand.end:
            tail = [view.texts[i] for i in range(end, cand.end) if has_alpha(view.texts[i])]
            if tail and all(len(t) <= 3 and t.isalpha() and t.isupper() for t in tail):
                return Candidate(cand.start, end, cand.kind)
    return cand


def describing_start(view: TitleView, cand: Candidate) -> bool:
    """Whether a guessed brand (no lexicon brand) starts with a describing word not written in capitals
    (`TitleView.descriptors`): "Outdoor MOLLE ...", "High Elastic SBR Belt", "Professional SUP Wetsuit" describe
    the product; "CLASSIC POLO" in capitals may be a name."""
    if cand.kind == NONE or (cand.start, cand.end) in view.lex_brands:
        return False
    text = view.texts[cand.start]
    return view.lows[cand.start] in view.descriptors and not text.isupper()


def lexicon_inside(view: TitleView, cand: Candidate) -> Candidate | None:
    """The first lexicon brand inside a candidate after its first word ("Remanufactured Panasonic UG-5540",
    "Retro JORDAN 5"), or None."""
    for start, end in view.lex_brands:
        if cand.start < start < cand.end:
            return Candidate(start, end, LEX)
    return None

"""`moon_category_rules`: which CATEGORY of a title is its category, and where that noun phrase begins and ends.

Titles name several product words ("Smead Expanding File with Flap & Elastic Cord Smead Cord Insertable Tabs");
the category is one noun phrase, usually the head of the first phrase, and in web-shop offers it is repeated
near the end ("... Black Case by Samsonite", "ReStockIt Smead Guides"). From the CATEGORY matches of the lexicons
this component makes compounds and keeps one:

1. Overlapping category matches are one compound ("Wall File" + "File Pocket" -> "Wall File Pocket"); the id is
   that of the right-most match, the head. Matches that only touch stay apart here ("Basketball" "Shorts"); step
   2 joins them in web-shop offers. A shop's immediate repetition of the head ("Bud Vase Vase") is no second
   compound, nor is a container after a quantity ("2.5oz Bag", "16.9 oz Bottle") when another compound is left,
   nor a one-word match glued after a hyphen to a describing word ("High-top", "Low-top Skateboarding Shoes";
   not after one letter: "V-Briefs") when the title names another product word,
   nor a one-word match glued before a hyphen to a word ("Tie-dye"; not a code: "Bra-BGDR01"), nor one that ranks
   the product ("Top Quality", "Top Grade"), nor a department word ("Fishing Tackle", "Swimwear") when the title
   names another product word,
   nor a later mention of the brand's words ("TOPS ... ReStockIt TOPS": the brand, not the category "tops")
   unless nothing else names the product ("Pepe Jeans Women Blue Jeans": the product word the brand ends with).
2. A compound takes in the words before it that are nouns of the category vocabulary (every word of every
   CATEGORY phrase but its function words such as the "of" of "bill of lading": "Interior File Folders",
   "Microwave Popcorn"; not "of Vitamin C"), up to `max_extend` words, stopping at
   the brand, a material or colour, a number, punctuation, and the `stop_modifiers` ("Recycled", "Premium").
   With `extend_capitalized`, a one-word compound also takes in up to `max_extend_other` capitalised words that
   no lexicon knows ("Lateral Cart", "Restaurant Range"; not upper-case codes such as "SAS"); with `glued_words`
   letters glued by - or / count as one word ("Extra-Heavy Bags", "Reporter/Steno Book").
3. With `phrase_head` ("missing": when no lexicon category is found; "always": also over a lexicon category), the
   last word of the first phrase is the category when the shop marks it as the product word: a "Null"
   placeholder follows it ("... SCSI Controller Null") or it comes back after the phrase ("... 7.2K Drive, Null
   Drive Wholesale"). Otherwise the category is the first compound whose head word occurs again where web shops
   repeat it (before "by", after the brand: "... Black Case by Samsonite"); otherwise, in titles with phrases
   (a , ; | ( or " - "), the last compound of the first phrase; otherwise, in keyword lists with three or more
   compounds, the last mention of the head word said most often ("Snapback Caps ... Baseball Caps ... Trucker
   Hat"); otherwise the last compound of the first phrase (up to "with", "for"), or the one `fallback` names
   (first or last compound of the title). Keyword lists of at least `long_list_words` words (marketplace titles
   that name the product first and pile search words after it: "Fishing Lure Deep Crankbait ... Hard Bait ...
   Fishing Tackle") take the first mention of the head word said most often, and the first compound when no head
   word is repeated; 0 turns this off. That first compound gives way to a compound that follows it word by word
   while it reads as a modifier, a singular noun ("Ski Snowboard Goggles" -> "Goggles"; "Cycling Glasses Mountain
   Bike" stays "Cycling Glasses").
   In a keyword list (three or more compounds, no phrases) the category is the plain head noun of the chosen
   compound ("Lures" of "Fishing Lures"): such titles name one product many ways, and its type is the head.
   An ambiguous head keeps the compound ("Sleeping Bag", "Baseball Caps", "Fishing Rod"): a word that ends phrases
   in at least `ambiguous_departments` of the `department_lexicons` ("bag": sleeping bag, trash bag, tote bag).
   A mention whose head word is also a material or colour match ("... Hockey Jerseys ... Player Jersey") leaves
   the category to another mention of the same word when there is one, and keeps its other reading.
A COLOR match inside a longer CATEGORY match is dropped: "Green Tea", "Ground Coffee" and "Red Dot Sight" name
kinds of product, not colours.
The chosen compound goes to `moon_category`, which the resolver trusts above `moon_lexicon` (the category "Paper"
of "... Ink Jet Paper" is not the material "paper"); the CATEGORY candidates leave `moon_lexicon`.
Step 2 runs only on titles with the structure of a web-shop offer (a , | ( or " - " in the title, or a head word
repeated as in step 3), where categories are written out in full ("Interior File Folders"); in catalogue
titles without punctuation ("Hanes Men Navy Blue Premium Bikini Briefs") the lexicon match stands.
"""
from __future__ import annotations

from spacy.language import Language
from spacy.tokens import Doc

from ner.components import groups
from ner.lexicon import plural_form, read_lexicon, read_words, resolve_path, singular

# what web shops write where a field is empty ("... Controller, Null New ...")
_PLACEHOLDERS = frozenset({"null", "n/a", "none"})
# packaging words that stop no category as modifiers but are the product word at the end of a phrase ("Cable Kit
# Null", "Knife Block Set - ...")
_PACKAGE_HEADS = frozenset({"kit", "kits", "set", "sets", "unit", "units", "case", "cases", "box", "boxes", "bag",
                            "bags", "roll", "rolls", "bottle", "bottles", "carton", "cartons"})
_CONTAINERS = frozenset({"bag", "bags", "bottle", "bottles", "box", "boxes", "can", "cans", "jar", "jars", "pouch",
                         "pouches", "canister", "canisters", "tub", "tubs", "packet", "packets", "carton", "cartons",
                         "tube", "tubes", "bucket", "buckets"})
_MEASURES = frozenset({"oz", "ounce", "ounces", "lb", "lbs", "pound", "pounds", "g", "kg", "ml", "l", "liter", "litre",
                       "gal", "gallon", "gallons", "qt", "quart", "fl", "ct", "count", "pc", "pcs"})
_NUMBER_WORDS = frozenset({"one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve"})
_PHRASE_ENDS = frozenset({",", ";", "|", "(", ")", "[", "]", ":", "with", "for", "w/", "featuring", "including"})
_HEAD_MARKS = _PLACEHOLDERS | _PHRASE_ENDS | {"-", "--", "w"}
# words that make the one before them a describing word: "Top Quality", "Top Grade", "Best Selling"
_RANK_WORDS = frozenset({"quality", "grade", "rated", "selling", "seller", "notch"})
# words that name a department of products, not one product ("Fishing Tackle", "Swimwear", "Shoe Accessories")
_UMBRELLA_HEADS = frozenset({"tackle", "tackles", "swimwear", "sportswear", "equipment",
                             "supplies", "gear", "clothing", "clothes", "apparel"})
_COLOR = "COLOR"
_FUNCTION_WORDS = frozenset({"of", "and", "de", "du", "la", "the", "for", "in", "with", "on", "to", "a", "an", "or",
                             "by", "at", "&", "n"})


@Language.factory(
    "moon_category_rules",
    default_config={
        "label": "CATEGORY",
        "blocking_labels": ["MATERIAL", "COLOR"],
        "stop_modifiers": "",
        "max_extend": 2,
        "extend": True,
        "fallback": "last",
        "repeated_head": True,
        "extend_capitalized": False,
        "max_extend_other": 1,
        "glued_words": False,
        "phrase_head": "off",
        "long_list_words": 0,
        "department_lexicons": [],
        "ambiguous_departments": 3,
    },
)
def make_category_rules(nlp: Language, name: str, label: str, blocking_labels: list[str], stop_modifiers: str,
                        max_extend: int, extend: bool, fallback: str, repeated_head: bool, extend_capitalized: bool,
                        max_extend_other: int, glued_words: bool, phrase_head: str,
                        long_list_words: int, department_lexicons: list[str],
                        ambiguous_departments: int) -> "CategoryRules":
    vocab: set[str] = set()
    if "moon_lexicon_ruler" in nlp.pipe_names:
        vocab = set(nlp.get_pipe("moon_lexicon_ruler").label_words.get(label, ()))
    stops = read_words(resolve_path(stop_modifiers)) if stop_modifiers else set()
    return CategoryRules(label=label, vocab=vocab, blocking_labels=set(blocking_labels), stop_modifiers=stops,
                         max_extend=max_extend if extend else 0, fallback=fallback, repeated_head=repeated_head,
                         extend_capitalized=extend_capitalized, max_extend_other=max_extend_other,
                         glued_words=glued_words, phrase_head=phrase_head, long_list_words=long_list_words,
                         ambiguous_heads=ambiguous_heads(department_lexicons, label, ambiguous_departments))


def ambiguous_heads(paths: list[str], label: str, departments: int) -> set[str]:
    """The head words (singular, lower case) that end `label` phrases of at least `departments` of the lexicons in
    `paths`, one lexicon per department: "bag" (sleeping bag, trash bag, tote bag), "cap" (baseball cap, lens cap),
    "rod" (fishing rod, curtain rod). Such a word alone does not say what the product is."""
    if departments < 1:
        raise ValueError(f"ambiguous_departments: expected 1 or more, got {departments}")
    seen: dict[str, set[int]] = {}
    for k, path in enumerate(paths):
        for pattern in read_lexicon(path, label):
            text = pattern.get("pattern")
            if pattern.get("label") != label or not isinstance(text, str) or len(text.split()) < 2:
                continue  # token patterns and one-word phrases name no modifier
            seen.setdefault(singular(text.split()[-1].lower()), set()).add(k)
    return {word for word, found in seen.items() if len(found) >= departments}


def _unless(compounds: list[tuple], weak) -> list[tuple]:
    """The compounds that `weak` does not reject, or all of them when it rejects every one: a weak reading of a
    word gives way to another product word of the title, never to none."""
    kept = [c for c in compounds if not weak(c)]
    return kept or compounds


class CategoryRules:
    _glue_marks = frozenset({"-", "/"})

    def __init__(self, label: str = "CATEGORY", vocab: set[str] = frozenset(),
                 blocking_labels: set[str] = frozenset({"MATERIAL", "COLOR"}), stop_modifiers: set[str] = frozenset(),
                 max_extend: int = 2, fallback: str = "last", repeated_head: bool = True,
                 extend_capitalized: bool = False, max_extend_other: int = 1, glued_words: bool = False,
                 phrase_head: str = "off", long_list_words: int = 0, ambiguous_heads: set[str] = frozenset()):
        if phrase_head not in ("off", "missing", "always"):
            raise ValueError(f"phrase_head: expected off, missing or always, got {phrase_head!r}")
        if fallback not in ("first", "last"):
            raise ValueError(f"fallback: expected first or last, got {fallback!r}")
        self.label = label
        # function words of category phrases ("bill of lading", "eau de toilette") join words, they are no nouns
        self.vocab = vocab - stop_modifiers - _FUNCTION_WORDS
        self.blocking_labels = blocking_labels
        self.stop_modifiers = stop_modifiers
        self.max_extend = max_extend
        self.fallback = fallback
        self.repeated_head = repeated_head
        self.extend_capitalized = extend_capitalized
        self.max_extend_other = max_extend_other
        self.glued_words = glued_words
        self.phrase_head = phrase_head
        self.long_list_words = long_list_words
        self.ambiguous_heads = ambiguous_heads

    def __call__(self, doc: Doc) -> Doc:
        lexicon = groups.get(doc, groups.LEXICON)
        cats = [c for c in lexicon if c[2] == self.label]
        brands = groups.get(doc, groups.HINT) + groups.get(doc, groups.BRAND)
        if not cats and not brands:
            return doc
        others = [c for c in lexicon if c[2] != self.label]
        phrases = [c for c in cats if c[1] - c[0] > 1]
        if phrases:
            # a colour word inside a longer category phrase names a kind of product, not its colour ("Green Tea",
            # "Ground Coffee", "Red Dot Sight", "Olive Oil", "Champagne Glass")
            others = [o for o in others if not (o[2] == _COLOR and any(
                c[0] <= o[0] and o[1] <= c[1] and c[1] - c[0] > o[1] - o[0] for c in phrases))]
        n = len(doc)
        owner: list[str | None] = [None] * n
        for start, end, _, _ in brands:
            for i in range(start, end):
                owner[i] = "BRAND"
        for start, end, other, _ in others:
            if other in self.blocking_labels:
                for i in range(start, end):
                    owner[i] = owner[i] or other
        toks = groups.tokens(doc)
        texts, lows, spaces = toks.texts, toks.lows, toks.spaces
        compounds = self.compounds(cats, owner)
        if len(compounds) > 1:  # every filter below keeps a lone compound
            compounds = self.drop_weak(compounds, texts, lows, spaces)
        brand_words = {lows[i] for start, end, _, _ in brands for i in range(start, end) if lows[i][:1].isalnum()}
        # a later mention of the brand is not a product word ("TOPS Bill of Lading ... ReStockIt TOPS Lading"), but
        # where nothing else names the product, the product word a brand ends with does ("Pepe Jeans Women Blue
        # Jeans", "Happy Socks Unisex Red Socks", "The Republic of Tea Orange Ginger Mint Tea")
        other = [c for c in compounds if not all(lows[i] in brand_words for i in range(c[0], c[1]))]
        if not other and compounds:
            brand_ends = {lows[end - 1] for start, end, _, _ in brands if end - start > 1}
            whole = {tuple(lows[start:end]) for start, end, _, _ in brands}
            other = [c for c in compounds if lows[c[1] - 1] in brand_ends and tuple(lows[c[0]:c[1]]) not in whole]
        compounds = other
        head = self.shop_phrase_head(owner, texts, lows, spaces) if self.phrase_head != "off" else None
        if head is not None and compounds and self.phrase_head == "always" and \
                not any(c[1] == head + 1 for c in compounds):
            # the shop's product word outranks the lexicon's: "Memory Expansion Board, Null New ... Board"
            found = self.extend((head, head + 1, self.label, ""), owner, texts, lows, spaces)
            groups.put(doc, groups.LEXICON, others)
            groups.put(doc, groups.CATEGORY, [found])
            return doc
        if not compounds:
            # no lexicon knows the product word: a web shop may still name it ("Shop Ticket Holders, ... 25/BX
            # Holders by C-Line CLI46117")
            found = self.shop_head(owner, texts, lows, spaces, brand_words)
            if found is None and head is not None:
                found = self.extend((head, head + 1, self.label, ""), owner, texts, lows, spaces)
            if found is not None:
                groups.put(doc, groups.CATEGORY, [found])
            if cats:
                groups.put(doc, groups.LEXICON, others)
            return doc
        chosen, structured = self.choose(compounds, lows, spaces, n, brand_words, owner)
        if owner[chosen[1] - 1]:
            # the chosen mention is also a material or colour ("Hockey Jerseys ... Player Jersey"): another mention
            # of the same product word is the category and this one keeps its other reading
            head = singular(lows[chosen[1] - 1])
            free = [c for c in compounds if singular(lows[c[1] - 1]) == head and not owner[c[1] - 1]]
            if free:
                chosen = free[-1]
        if structured and self.max_extend:
            chosen = self.extend(chosen, owner, texts, lows, spaces)
        elif not structured and len(compounds) > 2 and chosen[1] - chosen[0] > 1:
            # a keyword list names the product many ways ("Fishing Lure ... Hard Baits ... Lures"): its category is
            # the plain head noun, the shortest category match that ends the compound, unless that noun alone does
            # not say what the product is ("Sleeping Bag", "Baseball Caps", "Fishing Rod")
            # (a word glued to the one before it is part of that word: "shirt" of "T-shirt" is no head noun)
            heads = [c for c in cats if c[1] == chosen[1] and (c[0] == 0 or spaces[c[0] - 1])]
            if heads and singular(lows[chosen[1] - 1]) not in self.ambiguous_heads:
                head = min(heads, key=lambda c: c[1] - c[0])
                chosen = (head[0], head[1], chosen[2], head[3])
        groups.put(doc, groups.LEXICON, others)
        groups.put(doc, groups.CATEGORY, [chosen])
        return doc

    def drop_weak(self, compounds: list[tuple], texts: list[str], lows: list[str], spaces: list[bool]) -> list[tuple]:
        """The compounds without those that do not name the product while another compound does."""
        n = len(texts)
        # a container after a quantity ("2.5oz Bag", "16.9 oz Bottle", "40 Bottles/Carton") is packaging, not the
        # product, when the title names another product word
        compounds = _unless(compounds, lambda c: c[1] - c[0] == 1 and lows[c[0]] in _CONTAINERS and c[0] > 0 and (
            any(ch.isdigit() for ch in lows[c[0] - 1]) or lows[c[0] - 1] in _MEASURES))
        # a one-word match glued after a word and a hyphen is the end of a describing word ("High-top", "Low-top
        # Skateboarding Shoes"), not the product, when the title names another product word; not after a single
        # letter ("V-Briefs", "K-Cup")
        compounds = _unless(compounds, lambda c: c[1] - c[0] == 1 and c[0] > 1 and texts[c[0] - 1] == "-" and
                            not spaces[c[0] - 1] and not spaces[c[0] - 2] and len(texts[c[0] - 2]) > 1 and
                            texts[c[0] - 2].isalpha())
        # nor is one glued before a hyphen to a word: the start of a describing word ("Tie-dye One-piece Swimsuit",
        # "Bicycle-Toe Slip-On"); a code after the hyphen leaves it alone ("Bra-BGDR01")
        compounds = _unless(compounds, lambda c: c[1] - c[0] == 1 and c[1] + 1 < n and texts[c[1]] == "-" and
                            not spaces[c[1] - 1] and not spaces[c[1]] and len(texts[c[1] + 1]) > 1 and
                            texts[c[1] + 1].isalpha())
        # a one-word match that ranks the product is no product word: "Top Quality", "Top Grade" ("Printing Jersey
        # Top Quality Uniforms")
        compounds = _unless(compounds, lambda c: c[1] - c[0] == 1 and c[1] < n and lows[c[1]] in _RANK_WORDS and
                            spaces[c[0]])
        # a department word gives way to the product it files ("Pike Fishing Lure ... Fishing Tackle")
        compounds = _unless(compounds, lambda c: lows[c[1] - 1] in _UMBRELLA_HEADS)
        # a shop's immediate repetition of the head ("Bud Vase Vase - ...") is not a second compound
        compounds = [c for k, c in enumerate(compounds) if not (
            k and c[1] - c[0] == 1 and c[0] == compounds[k - 1][1] and lows[c[0]] == lows[compounds[k - 1][1] - 1])]
        return compounds

    def shop_head(self, owner: list, texts: list[str], lows: list[str], spaces: list[bool],
                  brand_words: set[str]) -> tuple | None:
        """The product word a web-shop offer repeats next to its brand ("... Holders by C-Line", "ReStockIt Smead
        Guides"), taken at its first mention with up to `max_extend` capitalised words before it."""
        n = len(texts)
        head = None
        for i in range(2, n - 1):
            if owner[i]:
                continue
            before_by = lows[i + 1] in ("by", "from") and i + 2 < n and owner[i + 2] == "BRAND"
            # a later mention of a brand word, apart from the brand itself ("Acco Swingline ... Acco Sharpener")
            # (a word glued to the brand word is the rest of it: the "M" of a later "3M")
            after_brand = lows[i - 1] in brand_words and spaces[i - 1] and i - 1 > 0 and owner[i - 2] != "BRAND" and \
                owner[i - 1] in ("BRAND", None) and any(owner[k] == "BRAND" for k in range(0, i - 2))
            if (before_by or after_brand) and texts[i][:1].isupper() and texts[i].isalpha() and \
                    lows[i] not in self.stop_modifiers:
                head = i
                break
        if head is None:
            return None
        target = singular(lows[head])
        first = next((k for k in range(head) if singular(lows[k]) == target and not owner[k]), head)
        start = first
        words = 0
        k = first - 1
        while k >= 0 and words < self.max_extend and spaces[k] and (k == 0 or spaces[k - 1]) and not owner[k] and \
                texts[k][:1].isupper() and texts[k].isalpha() and lows[k] not in self.stop_modifiers:
            start = k
            words += 1
            k -= 1
        return (start, first + 1, self.label, "")

    def shop_phrase_head(self, owner: list, texts: list[str], lows: list[str], spaces: list[bool]) -> int | None:
        """The last word of a web-shop offer's first phrase when the shop marks it as the product word: the
        phrase ends at a "Null" placeholder ("... SCSI Controller Null", "... Backplane Board, Null New ...") or
        the word comes back after the phrase ("... 7.2K Drive, Null Drive Wholesale"). The word is capitalised
        letters ("Drive", not "SAS" or "15K")."""
        if _HEAD_MARKS.isdisjoint(lows):
            return None  # no phrase end at all: most catalogue titles
        n = len(texts)
        start = 0
        while start < n and (lows[start] in _PLACEHOLDERS or lows[start] in (",", "|")):
            start += 1
        end = None
        for j in range(start + 1, n):
            low = lows[j]
            if low in _PLACEHOLDERS or low in _PHRASE_ENDS or low == "--" or (
                    low == "-" and spaces[j] and spaces[j - 1]) or (
                    low == "w" and j + 1 < n and lows[j + 1] == "/" and not spaces[j]):
                end = j
                break
        if end is None:
            return None
        h = end - 1
        text = texts[h]
        if owner[h] or (h > 0 and not spaces[h - 1]) or len(text) < 3 or not text.isalpha() or \
                not text[:1].isupper() or text.isupper() or lows[h] in _NUMBER_WORDS or \
                (lows[h] in self.stop_modifiers and lows[h] not in _PACKAGE_HEADS):
            return None
        if lows[end] in _PLACEHOLDERS:
            return h
        target = singular(lows[h])
        if any(singular(lows[j]) == target for j in range(end + 1, n)):
            return h
        return None

    def compounds(self, cats: list[tuple], owner: list) -> list[tuple]:
        """Category matches merged where they overlap (not where they only touch); matches inside the brand are
        dropped."""
        spans = sorted((c for c in cats if not any(owner[i] == "BRAND" for i in range(c[0], c[1]))),
                       key=lambda c: (c[0], -c[1]))
        merged: list[list] = []
        for start, end, label, ent_id in spans:
            if merged and start < merged[-1][1]:
                last = merged[-1]
                if end > last[1]:
                    last[1] = end
                    last[3] = ent_id
            else:
                merged.append([start, end, label, ent_id])
        return [tuple(m) for m in merged]

    def extend(self, comp: tuple, owner: list, texts: list[str], lows: list[str], spaces: list[bool]) -> tuple:
        """The compound with the modifier words just before it ("Interior" + "File Folders", "Lateral" + "File
        Cabinet", "Reporter/Steno" + "Book"): up to `max_extend` words, a word being letters or letters glued by
        "-" or "/" ("Extra-Heavy"). A word of the category vocabulary always qualifies; with `extend_capitalized`
        any capitalised word does, up to `max_extend_other` of them."""
        start, end, label, ent_id = comp
        words = other = 0
        i = start - 1
        head = singular(lows[end - 1])
        while i >= 0 and words < self.max_extend:
            if not spaces[i]:
                break  # glued to the compound: "12-Sheet", "2-Drawer"
            # the word ending at token i: letters, or letters glued by - and /
            k = i
            while k > 0 and not spaces[k - 1] and lows[k - 1] in self._glue_marks and k - 2 >= 0 and \
                    not spaces[k - 2]:
                k -= 2
            if k > 0 and not spaces[k - 1]:
                break  # glued to something else: "BS4830-AS-D", "(6)Extenders"
            parts = range(k, i + 1, 2)
            if k < i and not self.glued_words:
                break
            known = True
            for j in parts:
                low = lows[j]
                if owner[j] or not texts[j].isalpha() or singular(low) == head or low in self.stop_modifiers:
                    known = None
                    break
                if low not in self.vocab:
                    known = False
            if known is None:
                break
            if not known:
                if not self.extend_capitalized or other >= self.max_extend_other or end - start > 1 or \
                        not all(texts[j][:1].isupper() and not texts[j].isupper() for j in parts):
                    break
                other += 1
            words += 1
            start = k
            i = k - 1
        return (start, end, label, ent_id)

    def choose(self, compounds: list[tuple], lows: list[str], spaces: list[bool], n: int,
               brand_words: frozenset | set = frozenset(), owner: list | None = None) -> tuple[tuple, bool]:
        """The category compound, and whether the title is structured like a web-shop offer."""
        # 1. the head word repeated where web shops repeat it: "... Black Case by Samsonite", "ReStockIt Smead Guides"
        for comp in compounds if self.repeated_head else ():
            head = singular(lows[comp[1] - 1])
            for j in range(comp[1], n):
                # where a shop repeats it (the cheap test first), then whether it is the head word again
                if ((j + 1 < n and lows[j + 1] in ("by", "from")) or (j > 0 and lows[j - 1] in brand_words)) and \
                        singular(lows[j]) == head:
                    return comp, True
        # 2. the head of the first phrase
        phrase_end = n
        for j in range(1, n):
            if lows[j] in _PHRASE_ENDS or (lows[j] == "-" and spaces[j] and spaces[j - 1]) or (
                    lows[j] == "w" and j + 1 < n and lows[j + 1] == "/" and not spaces[j]):
                phrase_end = j
                break
        structured = phrase_end < n and lows[phrase_end] not in ("with", "for", "featuring", "including")
        in_first = [c for c in compounds if c[1] <= phrase_end]
        if structured and in_first:
            return in_first[-1], structured
        if len(compounds) > 2:
            # keyword lists ("... Snapback Caps Pop Boys Baseball Caps Hip Hop Trucker Hat ..."): the product word
            # said most often, at its last mention; long marketplace lists name the product first and pile up
            # search words after it ("Fishing Lure Deep Crankbait ... Hard Bait ... Fishing Tackle"): there the
            # first mention, and without a repeated word the first compound
            first = not structured and bool(self.long_list_words) and sum(spaces) + 1 >= self.long_list_words
            heads = [singular(lows[c[1] - 1]) for c in compounds]
            counts: dict[str, int] = {}
            for head in heads:
                counts[head] = counts.get(head, 0) + 1
            most = max(counts.values())
            if most > 1 or first:
                mentions = [c for c, h in zip(compounds, heads) if counts[h] == most]
                # a mention that a lexicon also reads as a material or colour ("... Basketball Jerseys ... Jersey
                # Stitched": the fabric jersey) is left to that label when another mention can be the category
                free = [c for c in mentions if not owner or not any(owner[i] for i in range(c[0], c[1]))]
                pick = (free or mentions)[0 if first else -1]
                if most == 1:
                    # no repeated head: the first compound, and over the compounds that follow it word by word
                    # while it reads as a modifier, a singular noun ("Ski Snowboard Goggles", "Skateboard Screws";
                    # not "Cycling Glasses Mountain Bike"), up to a head that is also a material or colour
                    # ("Arrowhead Iron")
                    k = compounds.index(pick)
                    while k + 1 < len(compounds) and compounds[k + 1][0] == compounds[k][1] and \
                            spaces[compounds[k][1] - 1] and not plural_form(lows[compounds[k][1] - 1]) and \
                            not (owner and owner[compounds[k + 1][1] - 1]):
                        k += 1
                    pick = compounds[k]
                return pick, structured
        if in_first:
            return in_first[-1], structured
        return (compounds[0] if self.fallback == "first" else compounds[-1]), structured

"""Names of the candidate groups that carry entity candidates from one component to the next.

Candidates are plain tuples (start token, end token, label, canonical id) kept in `doc.user_data["moon"]` by
group name, not spaCy SpanGroups: a title yields a dozen overlapping lexicon matches, and building Span objects
for all of them costs more than the matching itself. Only the resolver turns the chosen ones into `doc.ents`.

`moon_hint`: the row's catalogue brand where it occurs in the title. `moon_brand`: the brands the brand rules
kept or guessed. `moon_category`: the one category the category rules chose. `moon_lexicon`: lexicon and
pattern matches of the other labels. `moon_rules`: other rule-made
spans. The resolver reads them in this order of trust. `HINT_ATTR` is the key of `doc.user_data` where the caller puts the row's catalogue brand.
"""
HINT = "moon_hint"
BRAND = "moon_brand"
LEXICON = "moon_lexicon"
RULES = "moon_rules"
CATEGORY = "moon_category"
HINT_ATTR = "moon_brand_hint"
CANDIDATES = "moon"
TOKENS = "moon_tokens"
ENTS = "moon_ents"
# Set by a caller that reads ENTS only (the extractor): the resolver then leaves doc.ents unset, which saves the
# Span objects and the IOB bookkeeping of spaCy.
ENTS_ONLY = "moon_ents_only"


class Tokens:
    """Token strings of a doc, read once and shared by the components (spaCy Token objects are costly to make):
    `texts`, `lows` (lower case), `spaces` (whether white space follows) and `starts` (character offsets)."""

    __slots__ = ("texts", "lows", "spaces", "starts")

    def __init__(self, doc):
        texts = []
        spaces = []
        for tok in doc:
            texts.append(tok.text)
            spaces.append(tok.whitespace_ != "")
        starts = []
        pos = 0
        for text, space in zip(texts, spaces):
            starts.append(pos)
            pos += len(text) + space
        self.texts = texts
        self.lows = [t.lower() for t in texts]
        self.spaces = spaces
        self.starts = starts

    def text(self, start: int, end: int) -> str:
        """The text of tokens [start, end), with the white space between them."""
        if end <= start:
            return ""
        return "".join(t + (" " if s else "") for t, s in zip(self.texts[start:end - 1], self.spaces[start:end - 1])
                       ) + self.texts[end - 1]


def tokens(doc) -> Tokens:
    """The doc's `Tokens`, made on first use."""
    data = doc.user_data
    toks = data.get(TOKENS)
    if toks is None:
        toks = data[TOKENS] = Tokens(doc)
    return toks


def get(doc, group: str) -> list[tuple[int, int, str, str]]:
    """The candidates of one group ([] when the group was not written)."""
    return doc.user_data.get(CANDIDATES, {}).get(group, [])


def put(doc, group: str, candidates: list[tuple[int, int, str, str]]) -> None:
    doc.user_data.setdefault(CANDIDATES, {})[group] = candidates

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


def get(doc, group: str) -> list[tuple[int, int, str, str]]:
    """The candidates of one group ([] when the group was not written)."""
    return doc.user_data.get(CANDIDATES, {}).get(group, [])


def put(doc, group: str, candidates: list[tuple[int, int, str, str]]) -> None:
    doc.user_data.setdefault(CANDIDATES, {})[group] = candidates

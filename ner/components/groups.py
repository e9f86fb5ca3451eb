"""Names of the span groups that carry entity candidates from one component to the next.

`moon_hint`: the row's catalogue brand where it occurs in the title. `moon_lexicon`: lexicon and pattern matches.
`moon_rules`: spans guessed by rules (brands absent from every lexicon). The resolver reads them in this order of
trust. `HINT_ATTR` is the key of `doc.user_data` where the caller puts the row's catalogue brand.
"""
HINT = "moon_hint"
LEXICON = "moon_lexicon"
RULES = "moon_rules"
HINT_ATTR = "moon_brand_hint"

"""Names of the span groups that carry entity candidates from one component to the next.

`moon_hint`: the row's catalogue brand where it occurs in the title. `moon_brand`: the brands the brand rules
kept or guessed. `moon_lexicon`: lexicon and pattern matches of the other labels. `moon_rules`: other rule-made
spans. The resolver reads them in this order of trust. `HINT_ATTR` is the key of `doc.user_data` where the caller puts the row's catalogue brand.
"""
HINT = "moon_hint"
BRAND = "moon_brand"
LEXICON = "moon_lexicon"
RULES = "moon_rules"
HINT_ATTR = "moon_brand_hint"

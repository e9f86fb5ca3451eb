"""The `ner` stage (backend `spacy_rules`): entities of each title, and the brand/category/material/color lists.

spacy_rules.py: options and stage, a thin shell over the `ner` package (rules, lexicons, offsets).
"""

"""spaCy components of the NER pipeline, registered by name when this package is imported.

Each module registers one thing with spaCy's registries (`@Language.factory`, `@registry.tokenizers`); the
pipeline config (`ner/configs/*.cfg`) names them. Candidates travel between components as span groups (see
`groups`); the resolver alone writes `doc.ents`.
"""
from ner.pipeline import import_spacy

import_spacy()  # first, so that thinc does not load torch for these rule components

from ner.components import (brand_hint, brand_rules, category_rules, color_rules, lexicon_ruler, resolver,  # noqa: F401,E402
                            tokenizer)

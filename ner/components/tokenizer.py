"""`moon.title_tokenizer.v1`: spaCy's tokenizer for the language, with product-title punctuation split off.

Titles glue words with punctuation ("Flat,Nautical Navy,4 M US", "Black/White", "Men&Women", "Shoes|Brand").
The default English rules leave "Navy,4" or "Shoes|Brand" whole, and a lexicon phrase can then never match. Extra
infixes split these marks wherever they occur inside a token; lexicon phrases go through the same tokenizer, so a
phrase that contains one of them ("AT&T") still matches token for token.
"""
from __future__ import annotations

from spacy.util import compile_infix_regex, registry

# Marks that separate words in titles but that the default infixes keep inside a token when digits are involved.
TITLE_INFIXES = (r"[,;|/+&\\]", r"[\[\](){}<>]", r"(?<=[0-9])(?=[A-Za-z]{3,})", r"(?<=\w)\*|\*(?=\w)")


@registry.tokenizers("moon.title_tokenizer.v1")
def create_title_tokenizer(extra_infixes: list[str] = list(TITLE_INFIXES)):
    """The language's default tokenizer plus `extra_infixes` (regular expressions)."""
    default_factory = registry.tokenizers.get("spacy.Tokenizer.v1")()

    def make(nlp):
        tokenizer = default_factory(nlp)
        infixes = list(nlp.Defaults.infixes or ()) + list(extra_infixes)
        tokenizer.infix_finditer = compile_infix_regex(infixes).finditer
        return tokenizer

    return make

"""Tokenizers of the title pipelines.

`moon.title_tokenizer.v1` (en): spaCy's tokenizer for the language, with product-title punctuation split off.

Titles glue words with punctuation ("Flat,Nautical Navy,4 M US", "Black/White", "Men&Women", "Shoes|Brand").
The default English rules leave "Navy,4" or "Shoes|Brand" whole, and a lexicon phrase can then never match. Extra
infixes split these marks wherever they occur inside a token; lexicon phrases go through the same tokenizer, so a
phrase that contains one of them ("AT&T") still matches token for token.

`moon.char_latin_tokenizer.v1` (zh): one token per character, Latin words and numbers whole (`CharLatinTokenizer`).
"""
from __future__ import annotations

import re

from spacy.tokens import Doc
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


# A run of Latin letters and digits, with inner marks that glue a word together ("Li-Ning", "Levi's", "3.5").
_LATIN_WORD = r"[A-Za-z0-9]+(?:[-.'’][A-Za-z0-9]+)*"


class CharLatinTokenizer:
    """Every character its own token (CJK titles have no spaces to split words at, so lexicon phrases match at any
    character boundary), except runs of Latin letters and digits, which stay one token each: a Latin lexicon entry
    then matches whole words only ("Nike" in "新款Nike跑鞋", not inside "Nikes" or "Advans"), and a number is one
    token for patterns ("100%棉")."""

    _pieces = re.compile(rf"{_LATIN_WORD}|\s|\S")

    def __init__(self, vocab):
        self.vocab = vocab

    def __call__(self, text: str) -> Doc:
        words: list[str] = []
        spaces: list[bool] = []
        for piece in self._pieces.findall(text):
            if piece == " " and words and not spaces[-1] and not words[-1].isspace():
                spaces[-1] = True  # one space after a token is its trailing white space, as in spaCy
                continue
            words.append(piece)
            spaces.append(False)
        return Doc(self.vocab, words=words, spaces=spaces)

    def pipe(self, texts, batch_size: int = 1000):
        for text in texts:
            yield self(text)


@registry.tokenizers("moon.char_latin_tokenizer.v1")
def create_char_latin_tokenizer():
    """`CharLatinTokenizer` for a pipeline's vocabulary."""
    return lambda nlp: CharLatinTokenizer(nlp.vocab)

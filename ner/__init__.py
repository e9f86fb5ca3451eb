"""Rule-based product-title NER: BRAND, CATEGORY, MATERIAL and COLOR with offsets and canonical ids.

    import ner
    extractor = ner.load("en", lexicon_files=["BRAND=my_brands.txt"])
    extractor.extract(["Nike Men's Black Leather Sneakers"])
    # [[{"label": "BRAND", "text": "Nike", "start": 0, "end": 4, "id": "nike"}, ...]]

A spaCy pipeline built from `ner/configs/<lang>.cfg` (spacy.blank plus rule components; no model download), with
lexicons and patterns as data files under `ner/data/`. Importing this package is cheap: spaCy is imported by
`load`, so `moon --help` and the Airflow image do not pay for it.
"""
from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from ner.extractor import EntityExtractor

LABELS = ("BRAND", "CATEGORY", "MATERIAL", "COLOR")


def load(lang: str = "en", lexicon_files: Iterable[str] | str | os.PathLike | None = (), config: str | None = None,
         max_chars: int = 2000, batch_size: int = 256) -> "EntityExtractor":
    """The extractor for `lang` with extra lexicons; built once per process for each distinct argument set.

    `lexicon_files`: JSONL pattern files, or plain lists written `LABEL=path` (one phrase per line); one file may be
    given on its own, None means none.
    `config`: a pipeline config file to use instead of the bundled `ner/configs/<lang>.cfg`.
    """
    if lexicon_files is None:
        lexicon_files = ()
    elif isinstance(lexicon_files, (str, os.PathLike)):
        lexicon_files = (lexicon_files,)
    files = tuple(str(p) for p in lexicon_files)
    paths = _lexicon_paths(files)
    return _load(lang, files, _stamps(paths + ((config,) if config else ())), config, max_chars, batch_size)


def _lexicon_paths(files: tuple[str, ...]) -> tuple[str, ...]:
    """The file of each lexicon spec (`LABEL=path` or a path); LexiconError for an unknown label or a missing
    file, found here before the pipeline spends seconds on the bundled lexicons."""
    from ner.lexicon import resolve_path, split_spec

    return tuple(str(resolve_path(split_spec(spec)[1])) for spec in files)


def _stamps(paths: tuple[str, ...]) -> tuple:
    """Size and mtime of each file named, so that an edited lexicon or config is not served from the cache."""
    stamps = []
    for path in paths:
        try:
            st = os.stat(path)
            stamps.append((st.st_size, st.st_mtime_ns))
        except OSError:
            stamps.append(None)
    return tuple(stamps)


@functools.lru_cache(maxsize=8)
def _load(lang: str, lexicon_files: tuple[str, ...], stamps: tuple, config: str | None, max_chars: int,
          batch_size: int) -> "EntityExtractor":
    from ner.extractor import EntityExtractor
    from ner.pipeline import build_pipeline

    nlp = build_pipeline(lang, lexicon_files, config=config)
    return EntityExtractor(nlp, max_chars=max_chars, batch_size=batch_size)


__all__ = ["LABELS", "load"]

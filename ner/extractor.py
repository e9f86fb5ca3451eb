"""`EntityExtractor`: titles in, entities with offsets into the original titles out.

The one entry point the rest of the project uses (the ner stage, the CLI, the bench). It cleans each title
(`ner.text`), runs the spaCy pipeline's components over each batch of cleaned titles, and maps every entity back
to the characters of the title it came from. It never raises on a title: a title the pipeline fails on (it should not
happen) yields no entities and a logged warning, never a lost row.
"""
from __future__ import annotations

import contextlib
import gc
import logging
from typing import Sequence

from ner.components import groups
from ner.text import CleanTitle, clean_title

log = logging.getLogger(__name__)


class EntityExtractor:
    """Wraps a built pipeline. Cheap to call many times; build it once per process with `ner.load`."""

    def __init__(self, nlp, max_chars: int = 2000, batch_size: int = 256):
        self.nlp = nlp
        self.max_chars = max_chars
        self.batch_size = batch_size

    @property
    def lang(self) -> str:
        return self.nlp.lang

    def extract(self, titles: Sequence[object], brand_hints: Sequence[str | None] | None = None) -> list[list[dict]]:
        """One list of entities per title: {"label", "text", "start", "end", "id"}, in title order.

        `brand_hints` (one per title, or None) is the catalogue's brand of each row; where it occurs in the title,
        that span is the BRAND.
        """
        if brand_hints is not None and len(brand_hints) != len(titles):
            raise ValueError(f"brand_hints has {len(brand_hints)} entries for {len(titles)} titles")
        cleaned = [clean_title(t, self.max_chars) for t in titles]
        hints = brand_hints if brand_hints is not None else [None] * len(cleaned)
        out: list[list[dict]] = []
        with gc_paused():
            self._extract_batches(cleaned, hints, out)
        return out

    def _extract_batches(self, cleaned: list[CleanTitle], hints: Sequence[str | None], out: list) -> None:
        for start in range(0, len(cleaned), self.batch_size):
            part = cleaned[start:start + self.batch_size]
            part_hints = hints[start:start + self.batch_size]
            try:
                out.extend(self._run(part, part_hints))
            except Exception:  # one bad title must not cost the batch: retry one by one
                log.exception("NER batch failed; retrying its %d titles one by one", len(part))
                for title, hint in zip(part, part_hints):
                    try:
                        out.extend(self._run([title], [hint]))
                    except Exception:
                        log.exception("NER failed on a title of %d characters; no entities for it",
                                      len(title.original))
                        out.append([])

    def _run(self, cleaned: list[CleanTitle], hints: Sequence[str | None]) -> list[list[dict]]:
        docs = []
        for title, hint in zip(cleaned, hints):
            doc = self.nlp.make_doc(title.text)
            data = doc.user_data
            data[groups.ENTS_ONLY] = True
            if hint and isinstance(hint, str):
                data[groups.HINT_ATTR] = hint
            docs.append(doc)
        # each component over the whole batch in turn, as `nlp.pipe` does, without its chain of per-doc
        # generators (a tenth of the time on catalogue titles)
        for _, proc in self.nlp.pipeline:
            pipe = getattr(proc, "pipe", None)
            docs = list(pipe(docs)) if pipe is not None else [proc(doc) for doc in docs]
        return [_entities(title, doc) for title, doc in zip(cleaned, docs)]


@contextlib.contextmanager
def gc_paused():
    """The cyclic garbage collector paused while a batch runs. The pipeline makes many small objects and no
    reference cycles, yet each collection walks every live object (lexicons, vocab, a batch of docs): pausing it
    saves a fifth of the time. Reference counting still frees memory; collection resumes afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _entities(title: CleanTitle, doc) -> list[dict]:
    chosen = doc.user_data.get(groups.ENTS)
    if chosen is None:  # a pipeline without the moon resolver: read doc.ents
        chosen = [(e.start, e.end, e.label_, e.id_) for e in doc.ents]
    if not chosen:
        return []
    toks = groups.tokens(doc)
    starts, texts = toks.starts, toks.texts
    ents = []
    original = title.original
    for s, e, label, ent_id in chosen:
        start, end = title.span(starts[s], starts[e - 1] + len(texts[e - 1]))
        ents.append({"label": label, "text": original[start:end], "start": start, "end": end, "id": ent_id or None})
    return ents

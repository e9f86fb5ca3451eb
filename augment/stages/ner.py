"""The `ner` stage, `spacy_rules` backend: entities of each title, and the brand/category/material/color lists.

A thin shell over `ner.load(...).extract(...)`: the rules, lexicons and offsets live in the `ner` package. What
this stage adds is the row-level contract:
  - `entities`: every entity of the title, {label, text, start, end, id}, offsets into the row's title;
  - `brand`: the row's `catalog_brand` first (when non-empty), then the BRAND entity texts, de-duplicated
    case-insensitively; `category`, `material`, `color`: the texts of those labels, de-duplicated likewise;
  - the row's `catalog_brand` is a hint: where it occurs in the title, that span is the BRAND;
  - with `learn_brands`, the run's `learned_brands` artifact (one brand per line, derived from the input's brand
    column) joins the brand lexicon, so brands of this catalogue are found in rows whose brand field is empty.
It never rejects a row: a title without entities gets empty lists.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile

from augment.stages.base import Batch, RunContext, Stage, StageResult


@dataclasses.dataclass
class NerOptions:
    lang: str = "en"  # selects the pipeline config ner/configs/<lang>.cfg (en, zh)
    # Extra lexicon files: JSONL patterns, or LABEL=path for plain lists (one phrase per line).
    lexicons: list[str] = dataclasses.field(default_factory=list)
    # Add the run's learned_brands artifact (the input's distinct brand values) to the brand lexicon.
    learn_brands: bool = True


class NerStage(Stage):
    name = "ner"
    backend = "spacy_rules"
    reads = ("title", "catalog_brand")
    writes = ("entities", "brand", "category", "material", "color")
    options_cls = NerOptions
    requires = ("spacy",)

    def __init__(self, options: NerOptions | None = None, context: RunContext | None = None):
        super().__init__(options, context)
        self.extractor = None
        self._local_copies: list[str] = []

    def lexicon_files(self) -> list[str]:
        """The lexicon specs this stage adds to the bundled ones: the options', then the learned brands."""
        files = list(self.options.lexicons)
        learned = self.context.artifacts.get("learned_brands") if self.options.learn_brands else None
        if learned:
            files.append(f"BRAND={self._local(learned)}")
        return files

    def setup(self) -> None:
        import ner

        self.extractor = ner.load(self.options.lang, lexicon_files=self.lexicon_files())

    def process(self, batch: Batch) -> StageResult:
        if self.extractor is None:
            self.setup()
        titles = batch["title"]
        hints = [h if isinstance(h, str) and h.strip() else None for h in batch.get("catalog_brand") or
                 [None] * len(titles)]
        entities = self.extractor.extract(titles, brand_hints=hints)
        columns: dict[str, list] = {"entities": entities, "brand": [], "category": [], "material": [], "color": []}
        for ents, hint in zip(entities, hints):
            columns["brand"].append(_unique(([hint.strip()] if hint else []) + _texts(ents, "BRAND")))
            columns["category"].append(_unique(_texts(ents, "CATEGORY")))
            columns["material"].append(_unique(_texts(ents, "MATERIAL")))
            columns["color"].append(_unique(_texts(ents, "COLOR")))
        return StageResult(columns=columns)

    def describe(self) -> dict:
        return {"stage": self.name, "backend": self.backend, "model": f"ner/{self.options.lang}"}

    def _local(self, uri: str) -> str:
        """A local path for an artifact: itself when local, a downloaded copy when on an object store."""
        if "://" not in uri or uri.startswith("file://"):
            return uri.removeprefix("file://")
        from augment import storage

        fd, path = tempfile.mkstemp(prefix="moon-learned-brands-", suffix=".txt")
        with os.fdopen(fd, "wb") as fh:
            fh.write(storage.read_bytes(uri))
        self._local_copies.append(path)
        return path


def _texts(entities: list[dict], label: str) -> list[str]:
    return [e["text"] for e in entities if e["label"] == label]


def _unique(values: list[str]) -> list[str]:
    """First occurrence of each value, compared case-insensitively and ignoring surrounding white space."""
    seen: set[str] = set()
    out = []
    for value in values:
        key = " ".join(value.split()).casefold()
        if key and key not in seen:
            seen.add(key)
            out.append(value)
    return out

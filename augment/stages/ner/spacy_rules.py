"""The `ner` stage, `spacy_rules` backend: entities of each title, and the brand/category/material/color lists.

A thin shell over `ner.load(...).extract(...)`: the rules, lexicons and offsets live in the `ner` package. What
this stage adds is the row-level contract:
  - `entities`: every entity of the title, {label, text, start, end, id}, offsets into the row's title;
  - `brand`: the row's `catalog_brand` first (when non-empty), then the BRAND entity texts, de-duplicated
    case-insensitively; `category`, `material`, `color`: the texts of those labels, de-duplicated likewise;
  - the row's `catalog_brand` is a hint: where it occurs in the title, that span is the BRAND;
  - with `learn_brands`, the run's `learned_brands` artifact (a BRAND pattern per line, derived from the input's
    brand column) joins the brand lexicon, so brands of this catalogue are found in rows whose brand field is empty.
It never rejects a row: a title without entities gets empty lists.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile

from augment.core.config import ConfigError
from augment.stages.base import Batch, RunContext, Stage, StageResult


@dataclasses.dataclass
class NerOptions:
    lang: str = "en"  # selects the pipeline config ner/configs/<lang>.cfg (en, zh)
    # Extra lexicon files: JSONL patterns, or LABEL=path for plain lists (one phrase per line).
    lexicons: list[str] = dataclasses.field(default_factory=list)
    # Add the run's learned_brands artifact (the input's distinct brand values) to the brand lexicon.
    learn_brands: bool = True

    def check_data(self, key: str) -> None:
        """The language's pipeline configuration and every lexicon file must exist, and each lexicon read as the
        run reads it (JSON lines, labels, token patterns spaCy takes in shape and REGEX): checked when the config is
        validated, so that `moon config` and `--dry-run` refuse them, without importing spaCy."""
        from ner.lexicon import LexiconError, read_lexicon
        from ner.pipeline import config_path

        try:
            config_path(self.lang)
        except ValueError as exc:
            raise ConfigError(f"{key}.lang: {exc}") from None
        self.lexicon_paths(key)
        for i, spec in enumerate(self.lexicons):
            try:
                read_lexicon(spec)
            except (LexiconError, OSError) as exc:
                raise ConfigError(f"{key}.lexicons[{i}]: {exc}") from None

    def lexicon_paths(self, key: str) -> list[str]:
        """The file of each lexicon spec, as ner.load reads it (a bundled one named relative to ner/data); a spec
        with an unknown label or no file is a ConfigError naming `<key>.lexicons[i]`."""
        from ner.lexicon import LexiconError, resolve_path, split_spec

        paths = []
        for i, spec in enumerate(self.lexicons):
            try:
                paths.append(str(resolve_path(split_spec(spec)[1])))
            except LexiconError as exc:
                raise ConfigError(f"{key}.lexicons[{i}]: {exc}") from None
        return paths


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

    @classmethod
    def artifacts(cls, options: NerOptions) -> tuple[str, ...]:
        return ("learned_brands",) if options.learn_brands else ()

    @classmethod
    def option_files(cls, options: NerOptions) -> dict[str, str]:
        """Each lexicon file of the options, by its place in `lexicons`."""
        return {f"lexicons[{i}]": path for i, path in enumerate(options.lexicon_paths("stages.ner.options"))}

    def lexicon_files(self) -> list[str]:
        """The lexicon specs this stage adds to the bundled ones: the options', then the learned brands."""
        files = list(self.options.lexicons)
        learned = self.context.artifacts.get("learned_brands") if self.options.learn_brands else None
        if learned:  # JSON lines of BRAND patterns; a plain list (a run planned before them) takes the label
            local = self._local(learned)
            files.append(local if learned.endswith(".jsonl") else f"BRAND={local}")
        return files

    def setup(self) -> None:
        import ner

        self.extractor = ner.load(self.options.lang, lexicon_files=self.lexicon_files())
        for path in self._local_copies:  # the lexicons are in memory now
            os.unlink(path)
        self._local_copies.clear()

    def process(self, batch: Batch) -> StageResult:
        if self.extractor is None:
            self.setup()
        titles = batch["title"]
        hints = [h if isinstance(h, str) and h.strip() else None for h in batch.get("catalog_brand") or
                 [None] * len(titles)]
        entities = self.extractor.extract(titles, brand_hints=hints)
        return StageResult(columns=self._columns(entities, hints))

    def batch_context(self):
        """The cyclic garbage collector paused over the whole batch (see `ner.extractor.gc_paused`): the
        batch's columns as Python lists, the docs, the entity dicts and the row lists are many small objects and
        no cycles, and in a Ray actor every collection also walks Ray's own live objects. Seven interleaved pairs
        of bench/bench_ner.py runs on 2 cores: the stage's titles per CPU-second in its actor 0.85-0.98 of the
        pipeline alone (mean 0.92), against 0.79-0.92 (mean 0.84) without the pause."""
        from ner.extractor import gc_paused  # here, not at module level: importing it imports spaCy

        return gc_paused()

    @staticmethod
    def _columns(entities: list[list[dict]], hints: list[str | None]) -> dict[str, list]:
        columns: dict[str, list] = {"entities": entities, "brand": [], "category": [], "material": [], "color": []}
        brand, category, material, color = (columns[k] for k in ("brand", "category", "material", "color"))
        for ents, hint in zip(entities, hints):
            texts: dict[str, list[str]] = {"BRAND": [hint.strip()] if hint else [], "CATEGORY": [], "MATERIAL": [],
                                           "COLOR": []}
            for ent in ents:  # one pass over the row's entities
                bucket = texts.get(ent["label"])
                if bucket is not None:
                    bucket.append(ent["text"])
            brand.append(_unique(texts["BRAND"]))
            category.append(_unique(texts["CATEGORY"]))
            material.append(_unique(texts["MATERIAL"]))
            color.append(_unique(texts["COLOR"]))
        return columns

    def _local(self, uri: str) -> str:
        """A local path for an artifact: itself when local, a downloaded copy when on an object store."""
        if "://" not in uri or uri.startswith("file://"):
            return uri.removeprefix("file://")
        from augment.core import storage

        fd, path = tempfile.mkstemp(prefix="moon-learned-brands-", suffix=os.path.splitext(uri)[1])
        with os.fdopen(fd, "wb") as fh:
            fh.write(storage.read_bytes(uri))
        self._local_copies.append(path)
        return path


def _unique(values: list[str]) -> list[str]:
    """First occurrence of each value, compared case-insensitively and ignoring surrounding white space."""
    if len(values) == 1 and values[0].strip():
        return values
    seen: set[str] = set()
    out = []
    for value in values:
        key = " ".join(value.split()).casefold()
        if key and key not in seen:
            seen.add(key)
            out.append(value)
    return out

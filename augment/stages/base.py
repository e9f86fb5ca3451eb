"""The unit of work: a stage turns a batch of products into new columns, or rejects rows with a reason.

A stage is a plain class, testable without Ray: build it with its options and a RunContext, call `setup()` once
(load models there, never in `__init__`, so that Ray actors load them once and the driver never does), then call
`process(batch)` as often as needed. It must not drop, reorder or duplicate rows: it returns one value per input
row for each column it writes, and a rejection (reason code + detail) for rows it cannot handle. The chain in
`augment.pipeline` turns rejections into quarantine records; a stage never writes files itself.
"""
from __future__ import annotations

import contextlib
import dataclasses
from abc import ABC, abstractmethod
from typing import Any, ClassVar


@dataclasses.dataclass(frozen=True)
class Rejection:
    """Why one row cannot go on. `reason` is a short stable code counted in summaries (a `Reason` of
    augment/core/names.py, stored as its plain text); `detail` is for humans."""

    reason: str
    detail: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", str(self.reason))


@dataclasses.dataclass
class StageResult:
    columns: dict[str, list]
    rejects: list[Rejection | None] | None = None


@dataclasses.dataclass(frozen=True)
class RunContext:
    """What every stage may know about the run. Picklable; the same object reaches every Ray worker."""

    run_id: str = "local"
    config_hash: str = "0" * 16
    code_version: str = "dev"
    output_uri: str | None = None
    # Where stages that produce large objects (variant images stored by URI) put them.
    object_store_uri: str | None = None
    # Files the runner derived from the input before the stages start, by name (e.g. "learned_brands": a text
    # file of the catalogue's distinct brand values). Stages treat a missing name as "not available".
    artifacts: dict[str, str] = dataclasses.field(default_factory=dict)
    # Output image encoding for stages that produce images.
    image_format: str = "jpeg"
    image_quality: int = 90

    def seed(self, product_id: str, kind: str) -> int:
        """The seed of one generated item: a function of (product, kind, config) only, so reruns are identical."""
        from augment.core.util import stable_hash

        return int(stable_hash(product_id, kind, self.config_hash)[:15], 16)


@dataclasses.dataclass(frozen=True)
class NoOptions:
    pass


# A batch is a dict of column name -> list of values, one entry per live (not quarantined) row. It always holds
# `product_id` and every column named in the stage's `reads`.
Batch = dict[str, list[Any]]


class Stage(ABC):
    """Base class of every stage backend, registered by (stage name, backend name)."""

    name: ClassVar[str]  # validate | ner | enrich_title | background_prompts | image_variants | filter
    backend: ClassVar[str]  # e.g. template, classic, openai, diffusers
    reads: ClassVar[tuple[str, ...]] = ()
    writes: ClassVar[tuple[str, ...]] = ()
    options_cls: ClassVar[type] = NoOptions
    # Import names this backend needs beyond the core install; checked before any work starts so that a
    # missing extra is one clear error, not a traceback from a Ray worker.
    requires: ClassVar[tuple[str, ...]] = ()
    # A dataset stage transforms a whole Ray Dataset itself (e.g. ray.data.llm engine replicas) instead of
    # handling batches: the runner calls `transform_dataset(ds)` for it and never `process`.
    is_dataset_stage: ClassVar[bool] = False

    def __init__(self, options: Any = None, context: RunContext | None = None):
        self.options = options if options is not None else self.options_cls()
        self.context = context or RunContext()

    @classmethod
    def artifacts(cls, options: Any) -> tuple[str, ...]:
        """Names of the run artifacts this stage reads with these options (RunContext.artifacts): the planner
        derives only the ones some enabled stage asks for."""
        return ()

    @classmethod
    def option_files(cls, options: Any) -> dict[str, str]:
        """The local files these options name whose contents shape the output, by option (`lexicons[0]`): files
        the config check reads (`check_data`), so present on every machine that plans or runs a batch. Their
        contents are part of the run's identity (augment.plan), so that a resume after one changed is refused
        instead of mixing shards made from both versions. Model directories are not: they need only be on the
        nodes that run the stage."""
        return {}

    def setup(self) -> None:
        """Load models and other heavy state. Called once per process before the first batch."""

    def batch_context(self) -> contextlib.AbstractContextManager:
        """What the runner holds open around all its work on one batch of this stage: reading the batch's columns,
        `process`, and turning the outputs into Arrow columns. A stage that makes many small objects per batch
        and no reference cycles can pause the cyclic garbage collector here (the `ner` stage does)."""
        return contextlib.nullcontext()

    @abstractmethod
    def process(self, batch: Batch) -> StageResult:
        """Return one value per row for each column in `writes`, and optional per-row rejections."""

"""The client every model stage talks to: options common to all engines, and answers through the response cache.

A model stage (enrich_title, background_prompts with backend openai, transformers or vllm) builds its
ChatRequests, hands them to an `LLMClient`, and judges the Completions it gets back. The client answers each
request from the run's response cache when it was asked before (same prompts, model, decoding and input) and
from its engine otherwise, and caches what the engine answered. Engines (openai_engine, transformers_engine,
vllm_engine) only know how to answer a list of requests.

The options a user writes under `stages.<stage>.options` are one flat mapping: the options every engine shares
(`ModelOptions`), the engine's own and the task's own. `options_class` builds that flat dataclass from the three,
so each is written once.

Must not: know about prompts, guards or rows.
"""
from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence
from typing import Any, Protocol

from augment.core.config import ConfigError
from augment.llm.cache import ResponseCache
from augment.llm.requests import ChatRequest, Completion


@dataclasses.dataclass(frozen=True)
class ModelOptions:
    """Options common to every engine and task."""

    model: str = ""  # served model name (openai) or local model directory (transformers, vllm)
    send_image: bool = True  # false for text-only models: the prompt then relies on title and entities
    image_max_side: int = 768  # images are shrunk to this before sending (fewer vision tokens)
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    cache: bool = True  # the response cache under <run>/_cache/mllm
    max_description_chars: int = 1000

    def check_data(self, key: str) -> None:
        """A model must be named: checked when the config is validated (`moon config`, `--dry-run`)."""
        if not self.model:
            raise ConfigError(f"{key}.model is required: the served model name (openai) or a local model "
                              "directory (transformers, vllm)")


def options_class(name: str, module: str, *parts: type) -> type:
    """One flat, frozen options dataclass named `name` (defined in `module`) with the fields of `parts`, in order.

    A field that a later part names again keeps its place and takes the later part's default: a task's own
    default (background prompts' max_tokens 1024) replaces the common one, whatever order classes resolve in.
    The result must be bound to `name` in `module`, so that Ray can pickle its instances by reference.
    """
    fields: dict[str, tuple[str, Any, dataclasses.Field]] = {}
    for part in parts:
        hints = typing.get_type_hints(part)
        for f in dataclasses.fields(part):
            if f.default_factory is not dataclasses.MISSING:
                spec = dataclasses.field(default_factory=f.default_factory, metadata=f.metadata)
            else:
                spec = dataclasses.field(default=f.default, metadata=f.metadata)
            fields[f.name] = (f.name, hints[f.name], spec)
    doc = f"Options of one model stage backend: {', '.join(p.__name__ for p in parts)} as one mapping."
    namespace: dict[str, Any] = {"__doc__": doc}
    checks = [part.check_data for part in parts if hasattr(part, "check_data")]
    if checks:  # the parts' checks of the files and sets they name (augment.config.validate_stages calls it)
        def check_data(self, key: str) -> None:
            for check in checks:
                check(self, key)

        namespace["check_data"] = check_data
    posts = [part.__post_init__ for part in parts if hasattr(part, "__post_init__")]
    if posts:  # the parts' own range checks, when the options are built
        def __post_init__(self) -> None:
            for post in posts:
                post(self)

        namespace["__post_init__"] = __post_init__
    cls = dataclasses.make_dataclass(name, list(fields.values()), frozen=True, namespace=namespace)
    cls.__module__ = module
    cls.__qualname__ = name
    return cls


class Engine(Protocol):
    """What a batch engine provides (the vllm engine is a Ray Data transform instead: see vllm_engine)."""

    requires: tuple[str, ...]  # import names beyond the core install
    is_dataset: bool  # True: answers a whole Ray Dataset (transform), never a list of requests

    def setup(self) -> None: ...

    def decoding(self) -> dict[str, Any]: ...

    def generate(self, requests: Sequence[ChatRequest]) -> list[Completion]: ...


class LLMClient:
    """Answers from the response cache where present, from the engine otherwise; new answers are cached."""

    def __init__(self, engine: Engine, options: ModelOptions, run_uri: str | None, decoding: dict[str, Any]):
        self.engine = engine
        self.model = options.model  # as recorded in rows and cache keys
        self.cache = ResponseCache(run_uri) if options.cache and run_uri else None
        # Decoding parameters that change answers (part of the cache key).
        self.decoding = {"temperature": options.temperature, "top_p": options.top_p,
                         "max_tokens": options.max_tokens, **decoding, **engine.decoding()}

    def answer(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        """One Completion per request, in order; `cached` marks the ones the cache answered."""
        if not requests:
            return []
        keys = [r.key(self.model, self.decoding) for r in requests]
        hits = self.cache.get_many(keys) if self.cache else [None] * len(requests)
        results: list[Completion | None] = [
            Completion(h.get("text"), h.get("finish_reason"), cached=True) if h else None for h in hits
        ]
        todo = [i for i, r in enumerate(results) if r is None]
        fresh = self.engine.generate([requests[i] for i in todo]) if todo else []
        if len(fresh) != len(todo):
            raise RuntimeError(f"{type(self.engine).__name__}.generate returned {len(fresh)} answers for {len(todo)}")
        new_entries = []
        for i, completion in zip(todo, fresh):
            results[i] = completion
            if completion.error is None and self.cache:
                new_entries.append((keys[i], cache_entry(completion.text, completion.finish_reason, self.model,
                                                         requests[i].prompt_id)))
        if new_entries:
            self.cache.put_many(new_entries)
        return results  # type: ignore[return-value]


def cache_entry(text: str | None, finish_reason: str | None, model: str, prompt_id: str) -> dict[str, Any]:
    """What the response cache keeps of one answer."""
    return {"text": text, "finish_reason": finish_reason, "model": model, "prompt_id": prompt_id}

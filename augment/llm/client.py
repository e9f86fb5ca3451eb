"""The guarded flow every MLLM backend of enrich_title and background_prompts shares.

A backend (openai, transformers) only says how to answer a list of ChatRequests (`generate`); this module does
the rest, the same way for all of them:

enrich_title, per batch:
  1. build one enrich_title.vN request per row (zh prompts for CJK titles when language=auto);
  2. answer it from the response cache or the backend;
  3. parse (prompts.parsers) and guard (augment.stages.enrich_title.guards) each answer;
  4. rows whose answer was rejected get one retry with the strict prompt, told why;
  5. a row still rejected keeps its source title with status `rejected:<reason>`; a row whose calls failed at
     the transport level (after the client's own retries) keeps it with `fallback:<error>`.
  Every row gets an `enrichment` record: backend, model, the prompt id of its last attempt, status, attempts.

background_prompts, per batch: one Algorithm 6 request per row (after Algorithm 5's reference images, when
configured); a list that fails parsing or the guards is replaced by the curated template choice for that
product, so every row still gets its prompts (the fallback count is logged).

Must not: drop or reorder rows, raise on one bad answer, or know about HTTP, engines or tensors.
"""
from __future__ import annotations

import abc
import dataclasses
import logging
from collections import Counter
from typing import Any

from augment.core import storage
from augment.llm import requests as rq
from augment.llm.cache import ResponseCache
from augment.stages.enrich_title import guards
from augment.stages.background_prompts.template import choose_backgrounds
from augment.stages.base import Batch, Stage, StageResult
from augment.stages.enrich_title.template import enrichment_record
from prompts import backgrounds as background_sets
from prompts import parsers

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Completion:
    """A backend's answer to one request: the text, or the transport error that prevented one."""

    text: str | None = None
    finish_reason: str | None = None  # stop | length | ...
    error: str | None = None  # timeout | connection | http_<code> | engine; None when the call succeeded
    cached: bool = False


@dataclasses.dataclass(frozen=True)
class MLLMOptions:
    """Options common to every MLLM backend and task."""

    model: str = ""  # served model name (openai) or local model directory (transformers, vllm)
    send_image: bool = True  # false for text-only models: the prompt then relies on title and entities
    image_max_side: int = 768  # images are shrunk to this before sending (fewer vision tokens)
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    cache: bool = True  # the response cache under <run>/_cache/mllm
    max_description_chars: int = 1000


@dataclasses.dataclass(frozen=True)
class EnrichTaskOptions:
    language: str = "auto"  # prompt language: auto (zh for CJK titles, else en) | en | zh
    title_max_chars: int = 300  # guard: longest enriched title (longer sources may grow by 25 %)


@dataclasses.dataclass(frozen=True)
class BackgroundTaskOptions:
    # Algorithm 5: reference background images (local paths or s3:// URIs) shown before the Algorithm 6 prompt.
    reference_images: list[str] = dataclasses.field(default_factory=list)
    backgrounds: str = background_sets.LATEST  # curated set used when a model's list is rejected
    max_tokens: int = 1024  # a list of backgrounds is longer than a title (first in the MRO: wins over MLLMOptions)


def judge_title(completion: Completion, title: str, entities, bounds: guards.TitleBounds
                ) -> tuple[str | None, str | None]:
    """(candidate, None) when the model's answer is a usable enriched title, else (None, reason)."""
    if completion.error:
        return None, completion.error
    try:
        candidate = parsers.parse_enriched_title(completion.text, completion.finish_reason)
    except parsers.ParseError as exc:
        return None, exc.reason
    reason = guards.check_title(candidate, title, entities, bounds)
    return (candidate, None) if reason is None else (None, reason)


def judge_backgrounds(completion: Completion, count: int) -> tuple[list[str] | None, str | None]:
    """(prompts, None) when the model's answer holds `count` usable background prompts, else (None, reason)."""
    if completion.error:
        return None, completion.error
    try:
        candidates = parsers.parse_background_prompts(completion.text, count, completion.finish_reason)
    except parsers.ParseError as exc:
        return None, exc.reason
    reason = guards.check_background_prompts(candidates, count)
    return (candidates, None) if reason is None else (None, reason)


class MLLMStage(Stage):
    """Shared machinery: options check, response cache, batch bookkeeping. Subclasses implement `generate`."""

    reads = ("title", "description", "entities", "_image")

    def __init__(self, options=None, context=None):
        super().__init__(options, context)
        if not self.options.model:
            raise ValueError(f"{self.name}[{self.backend}]: options.model is required")
        if self.options.cache and self.context.output_uri:
            self.cache: ResponseCache | None = ResponseCache(self.context.output_uri)
        else:
            self.cache = None
        self.stats: Counter = Counter()

    # -- what a backend provides ------------------------------------------------------------------------------
    @abc.abstractmethod
    def generate(self, requests: list[rq.ChatRequest]) -> list[Completion]:
        """One Completion per request, in order. Transport failures are Completions with `error`, not raises."""

    @property
    def model_id(self) -> str:
        """The model as recorded in rows and cache keys."""
        return self.options.model

    def decoding(self) -> dict[str, Any]:
        """Decoding parameters that change answers (part of the cache key)."""
        o = self.options
        return {"temperature": o.temperature, "top_p": o.top_p, "max_tokens": o.max_tokens}

    # -- shared ------------------------------------------------------------------------------------------------
    def answer(self, requests: list[rq.ChatRequest]) -> list[Completion]:
        """Completions from the cache where present, from the backend otherwise; new answers are cached."""
        if not requests:
            return []
        keys = [r.key(self.model_id, self.decoding()) for r in requests]
        hits = self.cache.get_many(keys) if self.cache else [None] * len(requests)
        results: list[Completion | None] = [
            Completion(h.get("text"), h.get("finish_reason"), cached=True) if h else None for h in hits
        ]
        todo = [i for i, r in enumerate(results) if r is None]
        self.stats["cache_hits"] += len(requests) - len(todo)
        fresh = self.generate([requests[i] for i in todo]) if todo else []
        if len(fresh) != len(todo):
            raise RuntimeError(f"{type(self).__name__}.generate returned {len(fresh)} answers for {len(todo)}")
        new_entries = []
        for i, completion in zip(todo, fresh):
            results[i] = completion
            if completion.error is None and self.cache:
                entry = {"text": completion.text, "finish_reason": completion.finish_reason,
                         "model": self.model_id, "prompt_id": requests[i].prompt_id}
                new_entries.append((keys[i], entry))
        if new_entries:
            self.cache.put_many(new_entries)
        return results  # type: ignore[return-value]

    def image_urls(self, batch: Batch) -> list[str | None]:
        images = batch.get("_image") or [None] * len(batch["product_id"])
        if not self.options.send_image:
            return [None] * len(images)
        return [rq.image_data_url(img, self.options.image_max_side) if img else None for img in images]


class MLLMEnrichStage(MLLMStage):
    name = "enrich_title"
    writes = ("enriched_title", "enrichment")

    def __init__(self, options=None, context=None):
        super().__init__(options, context)
        if self.options.language not in ("auto", "en", "zh"):
            raise ValueError(f"enrich_title.language must be auto, en or zh, got {self.options.language!r}")
        self.bounds = guards.TitleBounds(max_chars=self.options.title_max_chars)

    def _request(self, batch: Batch, i: int, image_url: str | None, problem: str | None = None) -> rq.ChatRequest:
        return rq.enrich_request(
            batch["title"][i] or "",
            batch["description"][i],
            batch["entities"][i],
            image_url,
            self.context.seed(batch["product_id"][i], "enrich_title"),
            language=self.options.language,
            bounds=self.bounds,
            problem=problem,
            max_description_chars=self.options.max_description_chars,
        )

    def _judge(self, completion: Completion, title: str, entities) -> tuple[str | None, str | None]:
        return judge_title(completion, title, entities, self.bounds)

    def process(self, batch: Batch) -> StageResult:
        n = len(batch["product_id"])
        titles = [t or "" for t in batch["title"]]
        urls = self.image_urls(batch)
        first = [self._request(batch, i, urls[i]) for i in range(n)]
        answers = self.answer(first)

        out_titles: list[str] = list(titles)
        records: list[dict | None] = [None] * n
        retry: dict[int, str] = {}
        for i, completion in enumerate(answers):
            candidate, reason = self._judge(completion, titles[i], batch["entities"][i])
            if candidate is not None:
                out_titles[i] = candidate
                records[i] = enrichment_record(self.backend, self.model_id, first[i].prompt_id, "ok", 1)
            elif completion.error:
                records[i] = enrichment_record(self.backend, self.model_id, first[i].prompt_id, f"fallback:{reason}", 1)
            else:
                retry[i] = reason

        if retry:
            order = sorted(retry)
            second = [self._request(batch, i, urls[i], problem=retry[i]) for i in order]
            for i, request, completion in zip(order, second, self.answer(second)):
                candidate, reason = self._judge(completion, titles[i], batch["entities"][i])
                if candidate is not None:
                    out_titles[i] = candidate
                    status = "ok"
                else:
                    # A failed retry call leaves the first answer's rejection as the reason.
                    status = f"rejected:{retry[i] if completion.error else reason}"
                records[i] = enrichment_record(self.backend, self.model_id, request.prompt_id, status, 2)

        batch_stats = Counter(r["status"] for r in records)
        self.stats.update(batch_stats)
        log.info("%s[%s] %d rows: %s", self.name, self.backend, n, ", ".join(f"{k} {v}" for k, v in sorted(batch_stats.items())))
        return StageResult(columns={"enriched_title": out_titles, "enrichment": records})


REFERENCE_MAX_PIXELS = 40_000_000  # a reference image above this declared size is refused (decompression bomb)


class MLLMBackgroundStage(MLLMStage):
    name = "background_prompts"
    writes = ("background_prompts",)
    count = 10  # Algorithm 6 asks for ten

    def __init__(self, options=None, context=None):
        super().__init__(options, context)
        self.fallback_set = background_sets.load(self.options.backgrounds)
        self._reference_urls: list[str] | None = None

    def decoding(self) -> dict[str, Any]:
        return {**super().decoding(), "references": list(self.options.reference_images)}

    def reference_urls(self) -> list[str]:
        """The configured reference backgrounds as JPEG data URLs, decoded and checked like catalogue images."""
        if self._reference_urls is None:
            from augment.imaging import untrusted

            urls = []
            for uri in self.options.reference_images:
                try:
                    image = untrusted.normalise(storage.read_bytes(uri), max_pixels=REFERENCE_MAX_PIXELS, min_side=1,
                                             max_side=self.options.image_max_side)
                except untrusted.ImageRejected as exc:
                    raise ValueError(f"options.reference_images: {uri} is not a usable image ({exc})") from None
                urls.append(rq.image_data_url(untrusted.encode(image, "jpeg", 90)))
            self._reference_urls = urls
        return self._reference_urls

    def process(self, batch: Batch) -> StageResult:
        n = len(batch["product_id"])
        urls = self.image_urls(batch)
        refs = self.reference_urls() if self.options.send_image else []
        requests = []
        for i in range(n):
            text = rq.product_text(batch["title"][i], batch["description"][i])
            seed = self.context.seed(batch["product_id"][i], "background_prompts")
            requests.append(rq.background_request(text, urls[i], seed, refs, self.options.max_description_chars))
        out = []
        for i, completion in enumerate(self.answer(requests)):
            candidates, reason = judge_backgrounds(completion, self.count)
            if reason is None:
                out.append(candidates)
                self.stats["ok"] += 1
            else:
                seed = self.context.seed(batch["product_id"][i], "background_prompts")
                out.append(choose_backgrounds(self.fallback_set, batch["title"][i] or "", batch["entities"][i], self.count, seed))
                self.stats[f"fallback:{reason}"] += 1
        log.info("%s[%s] %d rows: %s", self.name, self.backend, n,
                 ", ".join(f"{k} {v}" for k, v in sorted(self.stats.items())))
        return StageResult(columns={"background_prompts": out})

"""What every stage backend that asks a language model shares: its engine, its client, the images it sends.

A model backend (enrich_title and background_prompts with backend openai, transformers or vllm) names an engine
class of augment.llm; `ModelStage` builds the engine and an `LLMClient` (the run's response cache, then the
engine) from the backend's options, loads the engine in `setup`, and turns product images into the data URLs a
request carries. The task (its requests, its judging, its fallbacks) is the subclass's.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

from augment.core.names import WORK_IMAGE
from augment.llm.client import LLMClient
from augment.llm.requests import ChatRequest, Completion, image_data_url, image_urls
from augment.stages.base import Batch, Stage


class ModelStage(Stage):
    reads = ("title", "description", "entities", WORK_IMAGE)
    engine_cls: ClassVar[type]  # the engine this backend runs on (augment.llm.*_engine)

    def __init__(self, options=None, context=None):
        super().__init__(options, context)
        self.options.check_data(f"stages.{self.name}.options")  # a model is named (and the task's own checks)
        self.engine = self.engine_cls(self.options, label=f"{self.name}[{self.backend}]")
        self.llm = LLMClient(self.engine, self.options, self.context.output_uri, self.decoding())
        self.stats: Counter = Counter()

    def decoding(self) -> dict[str, Any]:
        """The task's own parameters that change answers (part of the cache key), beyond the common ones."""
        return {}

    def setup(self) -> None:
        self.engine.setup()

    def answer(self, requests: list[ChatRequest]) -> list[Completion]:
        answers = self.llm.answer(requests)
        self.stats["cache_hits"] += sum(a.cached for a in answers)
        return answers

    def image_urls(self, batch: Batch) -> list[str | None]:
        n = len(batch["product_id"])
        return image_urls(batch.get(WORK_IMAGE) or [None] * n, self.options.send_image, self.options.image_max_side)

    def image_url_of(self, row: dict) -> str | None:
        image = row.get(WORK_IMAGE)
        if not (self.options.send_image and image):
            return None
        return image_data_url(image, self.options.image_max_side)

"""The model backends of background_prompts (`openai`, `transformers`, `vllm`): Algorithms 5-6 over three engines.

Per batch: one Algorithm 6 request per row (after Algorithm 5's reference images, when configured; requests.py),
answered through the LLM client (response cache, else the engine). A list that fails parsing or the guards
(guards.py) is replaced by the template's curated choice for that product (template.choose_backgrounds), so
every row still gets its prompts; the fallbacks are counted in the stage's log line.

The backends differ only in their engine (augment/llm): `openai` and `transformers` answer a batch's requests in
`process`; `vllm` runs the same steps as a Ray Data transform (`transform_dataset`). Options are one flat
mapping: ModelOptions, the engine's options and `BackgroundTask`.

Must not: drop or reorder rows, raise on one bad answer, or know about HTTP, engines or tensors.
"""
from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from typing import Any

from augment.core import storage
from augment.core.config import ConfigError
from augment.core.names import BACKGROUND_STATUS, Status
from augment.imaging import codec, untrusted
from augment.llm import vllm_engine as vx
from augment.llm.client import ModelOptions, options_class
from augment.llm.openai_engine import OpenAIEngine, OpenAIOptions
from augment.llm.requests import ChatRequest, Completion, image_data_url
from augment.llm.transformers_engine import TransformersEngine, TransformersOptions
from augment.llm.vllm_engine import VllmEngine, VllmOptions
from augment.stages.background_prompts import guards
from augment.stages.background_prompts.requests import background_request, product_text
from augment.stages.background_prompts.template import choose_backgrounds
from augment.stages.base import Batch, StageResult
from augment.stages.language_model import ModelStage
from prompts import backgrounds as background_sets
from prompts import parsers

log = logging.getLogger(__name__)

REFERENCE_MAX_PIXELS = 40_000_000  # a reference image above this declared size is refused (decompression bomb)


@dataclasses.dataclass(frozen=True)
class BackgroundTask:
    """The options of the background task itself, whatever the engine."""

    # Algorithm 5: reference background images (local paths or s3:// URIs) shown before the Algorithm 6 prompt.
    reference_images: list[str] = dataclasses.field(default_factory=list)
    backgrounds: str = background_sets.LATEST  # curated set used when a model's list is rejected
    max_tokens: int = 1024  # a list of backgrounds is longer than a title (replaces ModelOptions' 256)

    def check_data(self, key: str) -> None:
        """The fallback set must exist: checked when the config is validated (`moon config`, `--dry-run`)."""
        try:
            background_sets.load(self.backgrounds)
        except KeyError as exc:
            raise ConfigError(f"{key}.backgrounds: {exc.args[0]}") from None


OpenAIBackgroundOptions = options_class("OpenAIBackgroundOptions", __name__, ModelOptions, OpenAIOptions,
                                        BackgroundTask)
TransformersBackgroundOptions = options_class("TransformersBackgroundOptions", __name__, ModelOptions,
                                              TransformersOptions, BackgroundTask)
VllmBackgroundOptions = options_class("VllmBackgroundOptions", __name__, ModelOptions, VllmOptions, BackgroundTask)


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


class ModelBackgroundStage(ModelStage):
    """background_prompts with a language model; a backend names its engine."""

    name = "background_prompts"
    # the status goes to the shard's manifest record (background_status), not into the shard: the template
    # backend has none
    writes = ("background_prompts", BACKGROUND_STATUS)
    count = 10  # Algorithm 6 asks for ten

    def __init__(self, options=None, context=None):
        super().__init__(options, context)
        self.fallback_set = background_sets.load(self.options.backgrounds)
        self._reference_urls: list[str] | None = None

    def decoding(self) -> dict[str, Any]:
        return {"references": list(self.options.reference_images)}

    def reference_urls(self) -> list[str]:
        """The configured reference backgrounds as JPEG data URLs, decoded and checked like catalogue images."""
        if self._reference_urls is None:
            urls = []
            for uri in self.options.reference_images:
                try:
                    image = untrusted.normalise(storage.read_bytes(uri), max_pixels=REFERENCE_MAX_PIXELS, min_side=1,
                                                max_side=self.options.image_max_side)
                except untrusted.ImageRejected as exc:
                    raise ValueError(f"options.reference_images: {uri} is not a usable image ({exc})") from None
                urls.append(image_data_url(codec.encode(image, "jpeg", 90)))
            self._reference_urls = urls
        return self._reference_urls

    def _request(self, product_id: str, title: str | None, description: str | None, image_url: str | None,
                 reference_urls: list[str]) -> ChatRequest:
        seed = self.context.seed(product_id, "background_prompts")
        return background_request(product_text(title, description), image_url, seed, reference_urls,
                                  self.options.max_description_chars)

    def _fallback(self, product_id: str, title: str | None, entities) -> list[str]:
        seed = self.context.seed(product_id, "background_prompts")
        return choose_backgrounds(self.fallback_set, title or "", entities, self.count, seed)

    def process(self, batch: Batch) -> StageResult:
        n = len(batch["product_id"])
        urls = self.image_urls(batch)
        refs = self.reference_urls() if self.options.send_image else []
        requests = [self._request(batch["product_id"][i], batch["title"][i], batch["description"][i], urls[i], refs)
                    for i in range(n)]
        answers = self.answer(requests)
        out, statuses = [], []
        for i, completion in enumerate(answers):
            candidates, reason = judge_backgrounds(completion, self.count)
            if reason is None:
                out.append(candidates)
                statuses.append(Status.OK.value)
            else:
                out.append(self._fallback(batch["product_id"][i], batch["title"][i], batch["entities"][i]))
                statuses.append(Status.FALLBACK.because(reason))
        batch_stats = Counter(statuses)
        self.stats.update(batch_stats)  # answer() counts the cache hits
        batch_stats["cache_hits"] = sum(a.cached for a in answers)
        log.info("%s[%s] %d rows: %s", self.name, self.backend, n,
                 ", ".join(f"{k} {v}" for k, v in sorted(batch_stats.items())))
        return StageResult(columns={"background_prompts": out, BACKGROUND_STATUS: statuses})

    # -- the same steps row by row, for the vllm engine's Ray Data transform ------------------------------------
    def request_row(self, row: dict, reference_urls: list[str]) -> dict:
        url = self.image_url_of(row)
        request = self._request(row["product_id"], row["title"], row.get("description"), url, reference_urls)
        return {**row, vx.REQUEST: dataclasses.asdict(request)}

    def finalize(self, row: dict) -> dict:
        candidates, reason = judge_backgrounds(vx.completion_of(row), self.count)
        if reason is not None:
            candidates = self._fallback(row["product_id"], row["title"], row["entities"])
        status = Status.OK.value if reason is None else Status.FALLBACK.because(reason)
        return {**vx.public(row), "background_prompts": candidates, BACKGROUND_STATUS: status}

    def transform_dataset(self, ds):
        columns = list(ds.schema().names) + list(self.writes)
        ds, quarantined = vx.split_live(ds, self.writes)
        refs = self.reference_urls() if self.options.send_image else []
        # Each row function is isolated (vx.isolated): a product it fails on is quarantined, not the job failed.
        ds, failed = vx.split_live(ds.map(vx.isolated(lambda row: self.request_row(row, refs), self.name,
                                                      self.writes, (vx.REQUEST,))), self.writes)
        answered = self.engine.answer_dataset(ds, columns, self.llm).map(
            vx.isolated(self.finalize, self.name, self.writes))
        return answered.union(failed).map(vx.public).union(quarantined)


class OpenAIBackgroundPrompts(ModelBackgroundStage):
    backend = "openai"
    engine_cls = OpenAIEngine
    options_cls = OpenAIBackgroundOptions
    requires = OpenAIEngine.requires


class TransformersBackgroundPrompts(ModelBackgroundStage):
    backend = "transformers"
    engine_cls = TransformersEngine
    options_cls = TransformersBackgroundOptions
    requires = TransformersEngine.requires


class VllmBackgroundPrompts(ModelBackgroundStage):
    backend = "vllm"
    engine_cls = VllmEngine
    options_cls = VllmBackgroundOptions
    requires = VllmEngine.requires
    is_dataset_stage = True  # the runner calls transform_dataset(ds) instead of process(batch)

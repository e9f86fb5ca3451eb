"""The `vllm` backend: vLLM engine replicas inside the Ray Data pipeline (`ray.data.llm`), no server.

For GPU clusters: `ray.data.llm.build_processor(vLLMEngineProcessorConfig(...))` runs chat templating,
tokenisation, the engine (one replica per `concurrency`, each on `tensor_parallel_size` GPUs) and
detokenisation as Ray Data stages with their own actor pools. That is a Dataset -> Dataset transform, not a
per-batch call, so these stages are *dataset stages*: instead of `process(batch)` the runner calls
`transform_dataset(ds)` (see `is_dataset_stage`). The transform is

  ds -> cache lookup -> [misses] -> processor (attempt 1) -> cache store -> union(hits) -> judge
     -> [rows to retry] -> strict prompt -> cache lookup -> processor (attempt 2) -> ... -> judge again
     -> union -> finalize (enriched_title, enrichment; internal columns dropped)

Row order is not kept (filter/union): the runner's writer regroups rows by `_shard_id` (and must order them by
`_source_row`). Rows already quarantined by an earlier stage pass through untouched, with this stage's columns
set to None. Requests, parsing, guards, statuses and cache keys are the same as in the other backends
(augment.llm.requests / stage); everything in this module except `transform_dataset` is plain functions over
rows, tested without an engine. Inference errors (should_continue_on_error) become `fallback:engine`.

Needs `ray[llm]` and vLLM on the GPU workers (the ray GPU worker image), not on the driver.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from augment.llm import requests as rq
from augment.llm.client import (
    BackgroundTaskOptions,
    Completion,
    EnrichTaskOptions,
    MLLMBackgroundStage,
    MLLMEnrichStage,
    MLLMOptions,
    MLLMStage,
    judge_backgrounds,
)
from augment.llm.client import judge_title as stage_judge_title
from augment.core.schema import QUARANTINE_REASON
from augment.stages.enrich_title import guards
from augment.stages.background_prompts.template import choose_backgrounds
from augment.stages.enrich_title.template import enrichment_record

# Columns this transform adds while it works; all are dropped by `finalize_*`.
REQUEST = "_llm_request"  # the ChatRequest of the current attempt, as a dict
KEY = "_llm_key"  # its cache key
TEXT, FINISH, ERROR = "_llm_text", "_llm_finish", "_llm_error"
RETRY = "_llm_retry"  # the first attempt's rejection reason, or "" when no retry is needed
ATTEMPTS = "_llm_attempts"
IMAGE_URL = "_llm_image_url"  # the product image as sent with the first attempt, reused by the retry
INTERNAL = (REQUEST, KEY, TEXT, FINISH, ERROR, RETRY, ATTEMPTS, IMAGE_URL)


@dataclasses.dataclass(frozen=True)
class VllmEngineOptions:
    # Passed to vllm.LLM: e.g. {max_model_len: 8192, tensor_parallel_size: 1, gpu_memory_utilization: 0.9,
    # limit_mm_per_prompt: {image: 1}}. `model` is options.model, a local directory.
    engine_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    replicas: int = 1  # engine replicas (data parallel), each an actor holding tensor_parallel_size GPUs
    engine_batch_size: int = 64  # rows per engine call
    accelerator_type: str = ""  # e.g. A100, H100; empty: any GPU


@dataclasses.dataclass(frozen=True)
class VllmEnrichOptions(EnrichTaskOptions, VllmEngineOptions, MLLMOptions):
    pass


@dataclasses.dataclass(frozen=True)
class VllmBackgroundOptions(BackgroundTaskOptions, VllmEngineOptions, MLLMOptions):
    pass


# -- plain row functions (no Ray, no vLLM) ------------------------------------------------------------------------
def sampling_params(options: MLLMOptions, request: rq.ChatRequest) -> dict[str, Any]:
    """vLLM SamplingParams fields for one request, with the output schema as structured output."""
    return {
        "temperature": options.temperature,
        "top_p": options.top_p,
        "max_tokens": options.max_tokens,
        "seed": request.seed % (2**31),
        "structured_outputs": {"json": request.schema},
    }


def request_from_row(row: dict) -> rq.ChatRequest:
    return rq.ChatRequest(**row[REQUEST])


def engine_input(row: dict, options: MLLMOptions) -> dict:
    """Preprocess: the row plus the `messages` and `sampling_params` columns the processor reads."""
    request = request_from_row(row)
    return {**row, "messages": request.messages, "sampling_params": sampling_params(options, request)}


def engine_output(row: dict, original_columns: list[str], max_tokens: int) -> dict:
    """Postprocess/after an engine pass: keep the original columns, record the answer as TEXT/FINISH/ERROR."""
    out = {k: row[k] for k in original_columns if k in row}
    error = row.get("__inference_error__") or ""
    out[TEXT] = None if error else row.get("generated_text", "")
    # The engine output has no finish reason; a full max_tokens answer was cut off.
    out[FINISH] = "length" if not error and row.get("num_generated_tokens", 0) >= max_tokens else "stop"
    out[ERROR] = "engine" if error else ""
    return out


def completion_of(row: dict) -> Completion:
    return Completion(text=row.get(TEXT), finish_reason=row.get(FINISH), error=row.get(ERROR) or None)


def judge_title(row: dict, bounds: guards.TitleBounds) -> tuple[str | None, str | None]:
    return stage_judge_title(completion_of(row), row["title"] or "", row["entities"], bounds)


# -- the dataset transform -----------------------------------------------------------------------------------------
class VllmMixin(MLLMStage):
    backend = "vllm"
    requires = ("ray", "vllm")
    is_dataset_stage = True  # the runner calls transform_dataset(ds) instead of process(batch)

    # The engine runs only inside transform_dataset: the runner never calls these for a dataset stage (and refuses
    # --no-ray), so reaching one is a programming error. Defined here once; first in the MRO of both stages.
    def generate(self, requests):  # pragma: no cover
        raise NotImplementedError("the vllm backend runs as a Ray Data transform: use transform_dataset(ds)")

    process = generate

    def processor_config(self):
        """The ray.data.llm processor config for this stage's options (built on the driver)."""
        from ray.data.llm import vLLMEngineProcessorConfig

        o = self.options
        config = vLLMEngineProcessorConfig(
            model_source=o.model,
            # No code shipped with the model runs unless engine_kwargs turn trust_remote_code on.
            engine_kwargs={"max_model_len": 8192, "trust_remote_code": False, **o.engine_kwargs},
            concurrency=o.replicas,
            batch_size=o.engine_batch_size,
            accelerator_type=o.accelerator_type or None,
            prepare_multimodal_stage=o.send_image,
            should_continue_on_error=True,
        )
        return config

    def split_live(self, ds):
        """(live rows, quarantined rows with this stage's columns set to None): quarantined rows are not sent."""
        live = ds.filter(lambda r: r.get(QUARANTINE_REASON) is None)
        writes = self.writes
        dead = ds.filter(lambda r: r.get(QUARANTINE_REASON) is not None).map(
            lambda r: {**r, **{name: None for name in writes}})
        return live, dead

    def _engine_pass(self, ds, columns: list[str]):
        """Answer the REQUEST of every row: from the cache where present, from the engine otherwise."""
        from ray.data.llm import build_processor

        options, model, decoding, cache = self.options, self.model_id, self.decoding(), self.cache
        keep = columns + list(INTERNAL)

        def lookup(row):
            key = request_from_row(row).key(model, decoding)
            hit = cache.get(key) if cache else None
            return {**row, KEY: key, TEXT: hit["text"] if hit else None,
                    FINISH: hit.get("finish_reason") if hit else None, ERROR: "" if hit else "miss"}

        def store(row):
            if cache and not row[ERROR]:
                cache.put(row[KEY], {"text": row[TEXT], "finish_reason": row[FINISH], "model": model,
                                     "prompt_id": row[REQUEST]["prompt_id"]})
            return row

        ds = ds.map(lookup)
        hits = ds.filter(lambda r: r[ERROR] == "")
        misses = ds.filter(lambda r: r[ERROR] == "miss")
        answered = build_processor(
            self.processor_config(),
            preprocess=lambda row: engine_input(row, options),
            postprocess=lambda row: engine_output(row, keep, options.max_tokens),
        )(misses)
        # Rows that failed inference skip postprocess: normalise them the same way.
        answered = answered.map(lambda row: row if TEXT in row and ERROR in row and row[ERROR] != "miss"
                                else engine_output(row, keep, options.max_tokens)).map(store)
        return hits.union(answered)


class VllmEnrichStage(VllmMixin, MLLMEnrichStage):
    options_cls = VllmEnrichOptions

    def first_request(self, row: dict, image_url: str | None) -> dict:
        batch = {k: [v] for k, v in row.items()}
        return dataclasses.asdict(self._request(batch, 0, image_url))

    def judge_first(self, row: dict) -> dict:
        candidate, reason = judge_title(row, self.bounds)
        out = {**row, ATTEMPTS: 1, RETRY: ""}
        if candidate is not None:
            out |= {"enriched_title": candidate, "enrichment": enrichment_record(
                self.backend, self.model_id, row[REQUEST]["prompt_id"], "ok", 1)}
        elif row[ERROR]:
            out |= {"enriched_title": row["title"], "enrichment": enrichment_record(
                self.backend, self.model_id, row[REQUEST]["prompt_id"], f"fallback:{reason}", 1)}
        else:
            out |= {"enriched_title": row["title"], "enrichment": None, RETRY: reason}
        return out

    def retry_request(self, row: dict, image_url: str | None) -> dict:
        batch = {k: [v] for k, v in row.items()}
        return {**row, REQUEST: dataclasses.asdict(self._request(batch, 0, image_url, problem=row[RETRY]))}

    def judge_retry(self, row: dict) -> dict:
        candidate, reason = judge_title(row, self.bounds)
        status = "ok" if candidate is not None else f"rejected:{row[RETRY] if row[ERROR] else reason}"
        return {**row, "enriched_title": candidate if candidate is not None else row["title"],
                "enrichment": enrichment_record(self.backend, self.model_id, row[REQUEST]["prompt_id"], status, 2)}

    def image_url_of(self, row: dict) -> str | None:
        image = row.get("_image")
        if not (self.options.send_image and image):
            return None
        return rq.image_data_url(image, self.options.image_max_side)

    def transform_dataset(self, ds):
        columns = list(ds.schema().names) + ["enriched_title", "enrichment"]
        ds, quarantined = self.split_live(ds)
        def first(row):
            url = self.image_url_of(row)
            return {**row, IMAGE_URL: url, REQUEST: self.first_request(row, url)}

        ds = self._engine_pass(ds.map(first), columns).map(self.judge_first)
        done = ds.filter(lambda r: r[RETRY] == "")
        retry = ds.filter(lambda r: r[RETRY] != "").map(lambda row: self.retry_request(row, row[IMAGE_URL]))
        retried = self._engine_pass(retry, columns).map(self.judge_retry)
        finished = done.union(retried).map(lambda row: {k: v for k, v in row.items() if k not in INTERNAL})
        return finished.union(quarantined)


class VllmBackgroundPrompts(VllmMixin, MLLMBackgroundStage):
    options_cls = VllmBackgroundOptions

    def request_row(self, row: dict, reference_urls: list[str]) -> dict:
        text = rq.product_text(row["title"], row.get("description"))
        image = row.get("_image")
        url = rq.image_data_url(image, self.options.image_max_side) if (image and self.options.send_image) else None
        seed = self.context.seed(row["product_id"], "background_prompts")
        request = rq.background_request(text, url, seed, reference_urls, self.options.max_description_chars)
        return {**row, REQUEST: dataclasses.asdict(request)}

    def finalize(self, row: dict) -> dict:
        candidates, reason = judge_backgrounds(completion_of(row), self.count)
        if reason is not None:
            seed = self.context.seed(row["product_id"], "background_prompts")
            candidates = choose_backgrounds(self.fallback_set, row["title"] or "", row["entities"], self.count, seed)
        out = {k: v for k, v in row.items() if k not in INTERNAL}
        out["background_prompts"] = candidates
        return out

    def transform_dataset(self, ds):
        columns = list(ds.schema().names) + ["background_prompts"]
        ds, quarantined = self.split_live(ds)
        refs = self.reference_urls() if self.options.send_image else []
        ds = ds.map(lambda row: self.request_row(row, refs))
        return self._engine_pass(ds, columns).map(self.finalize).union(quarantined)

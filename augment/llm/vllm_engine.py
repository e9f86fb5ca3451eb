"""The `vllm` engine: vLLM engine replicas inside the Ray Data pipeline (`ray.data.llm`), no server.

For GPU clusters: `ray.data.llm.build_processor(vLLMEngineProcessorConfig(...))` runs chat templating,
tokenisation, the engine (one replica per `concurrency`, each on `tensor_parallel_size` GPUs) and
detokenisation as Ray Data stages with their own actor pools. That is a Dataset -> Dataset transform, not a
per-batch call, so the stages on this engine are *dataset stages*: instead of `process(batch)` the runner calls
their `transform_dataset(ds)` (see `is_dataset_stage`), which builds each row's request in a column, has
`VllmEngine.answer_dataset` answer it, and judges the answers:

  ds -> cache lookup -> [misses] -> processor (attempt 1) -> cache store -> union(hits) -> judge
     -> [rows to retry] -> strict prompt -> cache lookup -> processor (attempt 2) -> ... -> judge again
     -> union -> finalize (enriched_title, enrichment; internal columns dropped)

Row order is not kept (filter/union): the runner's writer regroups rows by `_shard_id` (and must order them by
`_source_row`). Rows already quarantined by an earlier stage pass through untouched, with the stage's columns
set to None (`split_live`). Requests, parsing, guards, statuses and cache keys are the same as with the other
engines; everything here except `answer_dataset` is plain functions over rows, tested without an engine.
Inference errors (should_continue_on_error) become `fallback:engine`; a row function that raises (an image that
cannot be sent, say) quarantines its product with `stage_error:<exception>` (`isolated`), as a batch stage's row
is, instead of failing the job.

Needs `ray[llm]` and vLLM on the GPU workers (the ray GPU worker image), not on the driver.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from augment.core.config import NOT_HASHED
from augment.core.errors import stage_error
from augment.core.schema import QUARANTINE_DETAIL, QUARANTINE_REASON, QUARANTINE_STAGE
from augment.llm.client import LLMClient, cache_entry
from augment.llm.requests import ChatRequest, Completion

# Columns the transform adds while it works; the stage drops them all before its rows go on.
REQUEST = "_llm_request"  # the ChatRequest of the current attempt, as a dict
KEY = "_llm_key"  # its cache key
TEXT, FINISH, ERROR = "_llm_text", "_llm_finish", "_llm_error"
RETRY = "_llm_retry"  # the first attempt's rejection reason, or "" when no retry is needed
ATTEMPTS = "_llm_attempts"
IMAGE_URL = "_llm_image_url"  # the product image as sent with the first attempt, reused by the retry
INTERNAL = (REQUEST, KEY, TEXT, FINISH, ERROR, RETRY, ATTEMPTS, IMAGE_URL)


@dataclasses.dataclass(frozen=True)
class VllmOptions:
    # Passed to vllm.LLM: e.g. {max_model_len: 8192, tensor_parallel_size: 1, gpu_memory_utilization: 0.9,
    # limit_mm_per_prompt: {image: 1}}. `model` is options.model, a local directory.
    engine_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Engine replicas (data parallel), each an actor holding tensor_parallel_size GPUs; like the GPU type below,
    # where the engine runs, not in the config hash.
    replicas: int = dataclasses.field(default=1, metadata=NOT_HASHED)
    engine_batch_size: int = 64  # rows per engine call
    accelerator_type: str = dataclasses.field(default="", metadata=NOT_HASHED)  # e.g. A100, H100; empty: any GPU


# -- plain row functions (no Ray, no vLLM) ------------------------------------------------------------------------
def sampling_params(options, request: ChatRequest) -> dict[str, Any]:
    """vLLM SamplingParams fields for one request, with the output schema as structured output."""
    return {
        "temperature": options.temperature,
        "top_p": options.top_p,
        "max_tokens": options.max_tokens,
        "seed": request.seed % (2**31),
        "structured_outputs": {"json": request.schema},
    }


def request_from_row(row: dict) -> ChatRequest:
    return ChatRequest(**row[REQUEST])


def engine_input(row: dict, options) -> dict:
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


def split_live(ds, writes: Sequence[str]):
    """(live rows, quarantined rows with the columns `writes` set to None): quarantined rows are not sent."""
    live = ds.filter(lambda r: r.get(QUARANTINE_REASON) is None)
    dead = ds.filter(lambda r: r.get(QUARANTINE_REASON) is not None).map(
        lambda r: {**r, **{name: None for name in writes}})
    return live, dead


def public(row: dict) -> dict:
    """The row without the columns the transform adds while it works (INTERNAL)."""
    return {k: v for k, v in row.items() if k not in INTERNAL}


def isolated(fn: Callable[[dict], dict], stage: str, writes: Sequence[str],
             adds: Sequence[str] = ()) -> Callable[[dict], dict]:
    """`fn` over one row, isolated as augment.pipeline isolates a batch stage's rows: a row `fn` raises on comes back
    quarantined (`stage_error:<exception class>`, the stage, the message as detail), its columns `writes` and the
    columns `adds` that `fn` would have added None, instead of failing the Ray Data task and with it the job. Split
    such rows off with `split_live` before an engine call."""

    def run(row: dict) -> dict:
        try:
            return fn(row)
        except Exception as exc:  # noqa: BLE001 - quarantine the product, never end the run
            reason, detail = stage_error(stage, exc, row.get("product_id"))
            out = {**row, **{name: None for name in (*writes, *adds)}, QUARANTINE_REASON: reason}
            for name, value in ((QUARANTINE_STAGE, stage), (QUARANTINE_DETAIL, detail)):
                if name in row:  # the pipeline's rows carry them; a bare dataset may not
                    out[name] = value
            return out

    return run


class VllmEngine:
    requires = ("ray", "vllm")
    is_dataset = True  # the stage runs as transform_dataset(ds), never process(batch)

    def __init__(self, options, label: str = "vllm"):
        """`options` carry VllmOptions' and ModelOptions' fields; `label` names the stage in logs."""
        self.options = options
        self.label = label

    def setup(self) -> None:
        """Nothing to load in the driver's or a batch worker's process: the engine replicas are Ray Data's."""

    def decoding(self) -> dict[str, Any]:
        return {}

    def processor_config(self):
        """The ray.data.llm processor config for these options (built on the driver)."""
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

    def answer_dataset(self, ds, columns: list[str], client: LLMClient):
        """Answer the REQUEST of every row into TEXT/FINISH/ERROR: from the client's cache where present, from the
        engine otherwise (answers, not engine failures, are cached). `columns` are the ones to keep."""
        from ray.data.llm import build_processor

        options, model, decoding, cache = self.options, client.model, client.decoding, client.cache
        keep = columns + list(INTERNAL)

        def lookup(row):
            key = request_from_row(row).key(model, decoding)
            hit = cache.get(key) if cache else None
            return {**row, KEY: key, TEXT: hit["text"] if hit else None,
                    FINISH: hit.get("finish_reason") if hit else None, ERROR: "" if hit else "miss"}

        def store(row):
            if cache and not row[ERROR]:
                cache.put(row[KEY], cache_entry(row[TEXT], row[FINISH], model, row[REQUEST]["prompt_id"]))
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

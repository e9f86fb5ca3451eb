"""The model backends of enrich_title (`openai`, `transformers`, `vllm`): one guarded flow over three engines.

Per batch:
  1. build one enrich_title.vN request per row (zh prompts for CJK titles when language=auto; requests.py);
  2. answer it through the LLM client: from the run's response cache, else from the engine;
  3. parse (prompts.parsers) and guard (guards.py) each answer;
  4. rows whose answer was rejected get one retry with the strict prompt, told why;
  5. a row still rejected keeps its source title with status `rejected:<reason>`; a row whose calls failed at
     the transport level (after the client's own retries) keeps it with `fallback:<error>`.
Every row gets an `enrichment` record: backend, model, the prompt id of its last attempt, status, attempts.

The backends differ only in their engine (augment/llm): `openai` and `transformers` answer a batch's requests
in `process`; `vllm` runs the same steps as a Ray Data transform (`transform_dataset`, row by row).
Options are one flat mapping: ModelOptions, the engine's options and `EnrichTask`.

Must not: drop or reorder rows, raise on one bad answer, or know about HTTP, engines or tensors.
"""
from __future__ import annotations

import dataclasses
import logging
from collections import Counter

from augment.core.config import ConfigError
from augment.core.names import Status
from augment.llm import vllm_engine as vx
from augment.llm.client import ModelOptions, options_class
from augment.llm.openai_engine import OpenAIEngine, OpenAIOptions
from augment.llm.requests import ChatRequest, Completion
from augment.llm.transformers_engine import TransformersEngine, TransformersOptions
from augment.llm.vllm_engine import VllmEngine, VllmOptions
from augment.stages.base import Batch, StageResult
from augment.stages.enrich_title import guards
from augment.stages.enrich_title.requests import LANGUAGES, enrich_request
from augment.stages.enrich_title.template import enrichment_record
from augment.stages.language_model import ModelStage
from prompts import parsers

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class EnrichTask:
    """The options of the enrichment task itself, whatever the engine."""

    language: str = "auto"  # prompt language: auto (zh for CJK titles, else en) | en | zh
    title_max_chars: int = 300  # guard: longest enriched title (longer sources may grow by 25 %)

    def check_data(self, key: str) -> None:
        """Checked when the config is validated (`moon config`, `--dry-run`) and when the stage is built."""
        if self.language not in LANGUAGES:
            raise ConfigError(f"{key}.language must be auto, en or zh, got {self.language!r}")
        if self.title_max_chars < 1:
            raise ConfigError(f"{key}.title_max_chars must be at least 1, got {self.title_max_chars}")


OpenAIEnrichOptions = options_class("OpenAIEnrichOptions", __name__, ModelOptions, OpenAIOptions, EnrichTask)
TransformersEnrichOptions = options_class("TransformersEnrichOptions", __name__, ModelOptions, TransformersOptions,
                                          EnrichTask)
VllmEnrichOptions = options_class("VllmEnrichOptions", __name__, ModelOptions, VllmOptions, EnrichTask)


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


class ModelEnrichStage(ModelStage):
    """enrich_title with a language model; a backend names its engine."""

    name = "enrich_title"
    writes = ("enriched_title", "enrichment")

    def __init__(self, options=None, context=None):
        super().__init__(options, context)
        self.bounds = guards.TitleBounds(max_chars=self.options.title_max_chars)

    def _request(self, batch: Batch, i: int, image_url: str | None, problem: str | None = None) -> ChatRequest:
        return enrich_request(
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

    def _record(self, prompt_id: str, status: str, attempts: int) -> dict:
        return enrichment_record(self.backend, self.llm.model, prompt_id, status, attempts)

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
            candidate, reason = judge_title(completion, titles[i], batch["entities"][i], self.bounds)
            if candidate is not None:
                out_titles[i] = candidate
                records[i] = self._record(first[i].prompt_id, Status.OK.value, 1)
            elif completion.error:
                records[i] = self._record(first[i].prompt_id, Status.FALLBACK.because(reason), 1)
            else:
                retry[i] = reason

        if retry:
            order = sorted(retry)
            second = [self._request(batch, i, urls[i], problem=retry[i]) for i in order]
            for i, request, completion in zip(order, second, self.answer(second)):
                candidate, reason = judge_title(completion, titles[i], batch["entities"][i], self.bounds)
                if candidate is not None:
                    out_titles[i] = candidate
                    status = Status.OK.value
                else:
                    # A failed retry call leaves the first answer's rejection as the reason.
                    status = Status.REJECTED.because(retry[i] if completion.error else reason)
                records[i] = self._record(request.prompt_id, status, 2)

        batch_stats = Counter(r["status"] for r in records)
        self.stats.update(batch_stats)
        log.info("%s[%s] %d rows: %s", self.name, self.backend, n,
                 ", ".join(f"{k} {v}" for k, v in sorted(batch_stats.items())))
        return StageResult(columns={"enriched_title": out_titles, "enrichment": records})

    # -- the same steps row by row, for the vllm engine's Ray Data transform ------------------------------------
    def first_request(self, row: dict, image_url: str | None) -> dict:
        batch = {k: [v] for k, v in row.items()}
        return dataclasses.asdict(self._request(batch, 0, image_url))

    def judge_first(self, row: dict) -> dict:
        candidate, reason = judge_title(vx.completion_of(row), row["title"] or "", row["entities"], self.bounds)
        prompt_id = row[vx.REQUEST]["prompt_id"]
        out = {**row, vx.ATTEMPTS: 1, vx.RETRY: ""}
        if candidate is not None:
            out |= {"enriched_title": candidate, "enrichment": self._record(prompt_id, Status.OK.value, 1)}
        elif row[vx.ERROR]:
            out |= {"enriched_title": row["title"],
                    "enrichment": self._record(prompt_id, Status.FALLBACK.because(reason), 1)}
        else:
            out |= {"enriched_title": row["title"], "enrichment": None, vx.RETRY: reason}
        return out

    def retry_request(self, row: dict, image_url: str | None) -> dict:
        batch = {k: [v] for k, v in row.items()}
        return {**row, vx.REQUEST: dataclasses.asdict(self._request(batch, 0, image_url, problem=row[vx.RETRY]))}

    def judge_retry(self, row: dict) -> dict:
        candidate, reason = judge_title(vx.completion_of(row), row["title"] or "", row["entities"], self.bounds)
        if candidate is not None:
            status = Status.OK.value
        else:
            status = Status.REJECTED.because(row[vx.RETRY] if row[vx.ERROR] else reason)
        return {**row, "enriched_title": candidate if candidate is not None else row["title"],
                "enrichment": self._record(row[vx.REQUEST]["prompt_id"], status, 2)}

    def transform_dataset(self, ds):
        columns = list(ds.schema().names) + ["enriched_title", "enrichment"]
        ds, quarantined = vx.split_live(ds, self.writes)

        def first(row):
            url = self.image_url_of(row)
            return {**row, vx.IMAGE_URL: url, vx.REQUEST: self.first_request(row, url)}

        # Each row function is isolated (vx.isolated): a product it fails on is quarantined, not the job failed.
        ds, failed = vx.split_live(ds.map(vx.isolated(first, self.name, self.writes, (vx.IMAGE_URL, vx.REQUEST))),
                                   self.writes)
        judged = vx.isolated(self.judge_first, self.name, self.writes, (vx.ATTEMPTS,))
        ds = self.engine.answer_dataset(ds, columns, self.llm).map(lambda row: {vx.RETRY: "", **judged(row)})
        done = ds.filter(lambda r: r[vx.RETRY] == "")
        retry, failed_retry = vx.split_live(ds.filter(lambda r: r[vx.RETRY] != "").map(vx.isolated(
            lambda row: self.retry_request(row, row[vx.IMAGE_URL]), self.name, self.writes)), self.writes)
        retried = self.engine.answer_dataset(retry, columns, self.llm).map(
            vx.isolated(self.judge_retry, self.name, self.writes))
        return done.union(retried, failed, failed_retry).map(vx.public).union(quarantined)


class OpenAIEnrichStage(ModelEnrichStage):
    backend = "openai"
    engine_cls = OpenAIEngine
    options_cls = OpenAIEnrichOptions
    requires = OpenAIEngine.requires


class TransformersEnrichStage(ModelEnrichStage):
    backend = "transformers"
    engine_cls = TransformersEngine
    options_cls = TransformersEnrichOptions
    requires = TransformersEngine.requires


class VllmEnrichStage(ModelEnrichStage):
    backend = "vllm"
    engine_cls = VllmEngine
    options_cls = VllmEnrichOptions
    requires = VllmEngine.requires
    is_dataset_stage = True  # the runner calls transform_dataset(ds) instead of process(batch)

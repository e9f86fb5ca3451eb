"""Where a model backend's background prompts came from, per shard: the manifest's background_status, the run's
summary line and the report's card. A model server that cannot be used makes every product fall back to the
curated set, and that must show beyond one log line."""
from __future__ import annotations

import json

import pyarrow.parquet as pq

from augment import commands, config as C, plan as P, runner
from augment.core import manifest
from augment.ops.report import overview
from testkit.openai_stub import StubServer, chat_answer
from tests.reliability.helpers import SAMPLE

TEN = [f"A bright minimalist studio backdrop in soft tone number {i}, evenly lit." for i in range(10)]


def test_the_run_counts_background_prompts_by_where_they_came_from(tmp_path):
    answers = iter([TEN, TEN[:9], TEN, TEN])  # the second product's list is one short: the curated set instead
    with StubServer(lambda body: (200, {}, chat_answer(json.dumps({"background_prompts": next(answers)})))) as server:
        config = C.load(overrides={
            "run": {"shard_size": 2, "progress": False},
            "stages": {
                "enrich_title": {"enabled": False},
                "background_prompts": {"backend": "openai", "options": {
                    "base_url": server.base_url, "model": "stub-vlm", "backoff_s": 0.01, "max_concurrency": 1,
                    "send_image": False}},
                "image_variants": {"enabled": False},
                "filter": {"enabled": False},
            },
        })
        plan = P.plan_run(str(SAMPLE), str(tmp_path / "run"), config, limit=4)
        result = runner.execute(plan, config, use_ray=False)
    records = sorted(manifest.load(str(tmp_path / "run")).values(), key=lambda r: r.row_start)
    assert [r.background_status for r in records] == [{"ok": 1, "fallback:wrong_count": 1}, {"ok": 2}]
    summary = commands.format_summary(commands.run_summary(result))
    assert "  background prompts: ok 3, fallback 1 (the curated set: wrong_count 1)" in summary.splitlines()
    assert overview._background_kpi(manifest.totals(records)) == [
        ("Backgrounds fallen back", "25.0 %", "ok 3 · fallback:wrong_count 1", "warn")]
    shard = pq.read_table(tmp_path / "run" / records[0].data_file)
    assert "_background_status" not in shard.column_names  # counted in the manifest, never written to shards

"""bench/bench_enrich.py builds its request bodies the way the openai backend sends them (no server needed here)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import bench_enrich  # noqa: E402


def test_the_bench_sends_the_stages_own_request_bodies():
    batch = bench_enrich.sample_batch(3)
    bodies = bench_enrich.payloads(batch, "stub-model", max_tokens=64)
    assert len(bodies) == 3 and {b["model"] for b in bodies} == {"stub-model"}
    assert all(b["max_tokens"] == 64 and b["messages"][0]["role"] == "system" for b in bodies)
    assert all(batch["title"][i] in b["messages"][1]["content"][-1]["text"] for i, b in enumerate(bodies))

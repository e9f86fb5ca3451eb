"""Benchmark of title enrichment through the openai backend against a real vLLM CPU server.

Measures, on the same requests (enrich_title prompts, as the stage pins them, of the bundled Myntra sample products):
  1. requests/s of the async client against vLLM (tiny random Llama, CPU) at concurrency 1 and 16;
  2. the client's own cost per request: the same client against a local stub server that answers at once
     (what remains is our request encoding, HTTP and response decoding, plus the stub's own handling);
  3. the whole enrich_title stage per row against the stub (prompt rendering, cache keys, parsing, guards).

Run from the repository root (needs `make vllm-venv` first):
    PYTHONPATH=. .venv/bin/python bench/bench_enrich.py --out bench-enrich.json
Prints the figures and writes them as JSON to --out.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from augment.stages.enrich_title.model import OpenAIEnrichOptions, OpenAIEnrichStage  # noqa: E402
from augment.stages.enrich_title.requests import PROMPT_IDS  # noqa: E402
from augment.llm.http import OpenAIChatClient  # noqa: E402
from augment.stages.base import RunContext  # noqa: E402
from testkit.openai_stub import StubServer, chat_answer  # noqa: E402
from testkit.tiny_models import build_llama  # noqa: E402
from testkit.vllm_server import VllmServer, vllm_python  # noqa: E402

SAMPLE = ROOT / "augment" / "sample" / "myntra_sample.parquet"


def sample_batch(n: int) -> dict:
    rows = pq.read_table(SAMPLE, columns=["product_id", "title"]).to_pylist()
    rows = [rows[i % len(rows)] for i in range(n)]
    return {
        "product_id": [f"{r['product_id']}-{i}" for i, r in enumerate(rows)],
        "title": [r["title"] for r in rows],
        "description": [None] * n,
        "entities": [[{"label": "BRAND", "text": r["title"].split()[0], "start": 0,
                       "end": len(r["title"].split()[0]), "id": None}] for r in rows],
        "_image": [None] * n,
    }


def payloads(batch: dict, model: str, max_tokens: int) -> list[dict]:
    stage = OpenAIEnrichStage(OpenAIEnrichOptions(model=model, max_tokens=max_tokens, send_image=False), RunContext())
    return [stage.engine.payload(stage._request(batch, i, None)) for i in range(len(batch["product_id"]))]


def client_rate(base_url: str, bodies: list[dict], concurrency: int, repeats: int = 1) -> dict:
    """Requests/s of complete_many over `bodies` (best of `repeats`, after one warm-up request)."""
    client = OpenAIChatClient(base_url, max_concurrency=concurrency, timeout_s=300)
    client.complete_many(bodies[:1])
    best = None
    for _ in range(repeats):
        start = time.perf_counter()
        completions = client.complete_many(bodies)
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    errors = sum(c.error is not None for c in completions)
    client.close()
    return {"concurrency": concurrency, "requests": len(bodies), "seconds": round(best, 3),
            "requests_per_s": round(len(bodies) / best, 2), "errors": errors, "retries": client.retries}


def stage_per_row_ms(base_url: str, batch: dict, model: str, max_tokens: int) -> float:
    options = OpenAIEnrichOptions(model=model, base_url=base_url, max_tokens=max_tokens, send_image=False,
                                  max_concurrency=1)
    stage = OpenAIEnrichStage(options, RunContext())
    stage.setup()
    stage.process({k: v[:1] for k, v in batch.items()})
    start = time.perf_counter()
    result = stage.process(batch)
    elapsed = time.perf_counter() - start
    stage.engine.client.close()
    assert len(result.columns["enrichment"]) == len(batch["product_id"])
    return elapsed / len(batch["product_id"]) * 1000


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--stub-only", action="store_true", help="only the client-overhead figures (no vLLM)")
    args = parser.parse_args(argv)

    python, why = vllm_python()
    if python is None and not args.stub_only:
        sys.exit(f"bench_enrich: {why}")
    batch = sample_batch(args.requests)
    figures: dict = {"requests": args.requests, "max_tokens": args.max_tokens}

    def faithful(body):
        # Echo the fenced source title with an attribute added: an answer the guards accept, so the stage
        # figure counts one request per row.
        text = [p["text"] for p in body["messages"][1]["content"] if p["type"] == "text"][0]
        title = text.split("<<<\n", 1)[1].split("\n>>>", 1)[0]
        return 200, {}, chat_answer(json.dumps({"enriched_title": f"{title}, Regular Fit"}))

    # 2 + 3 first: the stub runs alone on the machine, without a vLLM server competing for the CPU.
    with StubServer(faithful) as stub:
        bodies = payloads(batch, "stub", args.max_tokens)
        stub_1 = client_rate(stub.base_url, bodies, 1, repeats=3)
        stub_16 = client_rate(stub.base_url, bodies, 16, repeats=3)
        figures["stub"] = {"c1": stub_1, "c16": stub_16,
                           "client_ms_per_request_c1": round(1000 / stub_1["requests_per_s"], 3)}
        figures["stage_ms_per_row_stub"] = round(stage_per_row_ms(stub.base_url, batch, "stub", args.max_tokens), 3)

    if args.stub_only:
        print(json.dumps(figures, indent=2))
        return figures
    with tempfile.TemporaryDirectory() as tmp:
        model = build_llama(Path(tmp) / "tiny-llama")
        start = time.perf_counter()
        with VllmServer(python, model, Path(tmp) / "server.log", enforce_eager=False) as server:
            figures["server_ready_s"] = round(time.perf_counter() - start, 1)
            bodies = payloads(batch, server.model_dir, args.max_tokens)
            for c in args.concurrency:
                figures[f"vllm_c{c}"] = client_rate(server.base_url, bodies, c)

    print(f"vLLM CPU server (tiny random Llama, max_tokens {args.max_tokens}), {args.requests} "
          f"{PROMPT_IDS['enrich_title']} requests; server ready in {figures['server_ready_s']} s")
    for c in args.concurrency:
        f = figures[f"vllm_c{c}"]
        print(f"  concurrency {c:>2}: {f['requests_per_s']:8.2f} req/s  ({f['seconds']} s, errors {f['errors']})")
    print("client overhead against an instant local stub server (client + stub handling, upper bound):")
    print(f"  concurrency  1: {figures['stub']['client_ms_per_request_c1']:.3f} ms/request "
          f"({figures['stub']['c1']['requests_per_s']} req/s)")
    print(f"  concurrency 16: {figures['stub']['c16']['requests_per_s']} req/s")
    print(f"whole enrich_title stage per row against the stub (concurrency 1): {figures['stage_ms_per_row_stub']:.3f} ms")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()

"""Milliseconds per product of the classic image_variants stage and the heuristic filter, single process.

    python bench/bench_classic_variants.py --products 400 --size 512 --out /tmp/classic.json

Products come from the bundled Myntra sample (224 px studio photos), repeated under new product ids until
--products is reached. Prints one line per stage (wall-clock and CPU time of this process) and writes the figures as JSON to --out.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow.parquet as pq  # noqa: E402

from augment.stages.image_variants.classic import ClassicOptions, ClassicVariantsStage  # noqa: E402
from augment.stages.base import RunContext  # noqa: E402
from augment.stages.filter.heuristic import HeuristicFilterOptions, HeuristicFilterStage  # noqa: E402

SAMPLE = Path(__file__).resolve().parent.parent / "augment" / "sample" / "myntra_sample.parquet"
PROMPTS = [
    "a warm beige studio backdrop with a soft shadow", "white marble countertop in daylight",
    "pastel pink seamless paper", "light oak wooden floor against a cream wall", "sunlit garden bokeh",
    "pale grey concrete wall", "soft blue gradient", "dark charcoal studio wall", "cream linen backdrop",
    "mint green minimal background",
]


def batches(n: int, batch_size: int):
    rows = pq.read_table(SAMPLE, columns=["product_id", "title", "image", "brand"]).to_pylist()
    for start in range(0, n, batch_size):
        chunk = [rows[i % len(rows)] for i in range(start, min(n, start + batch_size))]
        yield {
            "product_id": [f"{r['product_id']}-{start + k}" for k, r in enumerate(chunk)],
            "title": [r["title"] for r in chunk],
            "_image": [r["image"] for r in chunk],
            "brand": [[r["brand"]] if r["brand"] else [] for r in chunk],
            "background_prompts": [PROMPTS] * len(chunk),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=400)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    context = RunContext()
    variants_stage = ClassicVariantsStage(ClassicOptions(size=args.size), context)
    filter_stage = HeuristicFilterStage(HeuristicFilterOptions(), context)
    variants_stage.setup()
    filter_stage.setup()
    t_variants = t_filter = cpu_variants = cpu_filter = 0.0
    count = failed = filtered = 0
    for batch in batches(args.products, args.batch_size):
        t0, c0 = time.perf_counter(), time.process_time()
        rows = variants_stage.process(batch).columns["variants"]
        t1, c1 = time.perf_counter(), time.process_time()
        rows = filter_stage.process({**batch, "variants": rows}).columns["variants"]
        t2, c2 = time.perf_counter(), time.process_time()
        t_variants += t1 - t0
        t_filter += t2 - t1
        cpu_variants += c1 - c0
        cpu_filter += c2 - c1
        count += len(rows)
        failed += sum(v["status"].startswith("failed") for row in rows for v in row)
        filtered += sum(v["status"] == "filtered" for row in rows for v in row)
    result = {
        "products": count,
        "size": args.size,
        "image_variants_ms_per_product": 1000 * t_variants / count,
        "filter_ms_per_product": 1000 * t_filter / count,
        # CPU time of this process: the figure to trust on a machine shared with other work.
        "image_variants_cpu_ms_per_product": 1000 * cpu_variants / count,
        "filter_cpu_ms_per_product": 1000 * cpu_filter / count,
        "variants_failed": failed,
        "variants_filtered": filtered,
    }
    print(
        f"image_variants (classic, {args.size}px): {result['image_variants_ms_per_product']:.1f} ms/product wall, "
        f"{result['image_variants_cpu_ms_per_product']:.1f} ms CPU"
    )
    print(
        f"filter (heuristic):                 {result['filter_ms_per_product']:.1f} ms/product wall, "
        f"{result['filter_cpu_ms_per_product']:.1f} ms CPU"
    )
    print(f"variants failed: {failed}, filtered: {filtered} of {count * 5}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

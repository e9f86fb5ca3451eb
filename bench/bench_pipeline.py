"""Throughput and memory of `moon run` with the CPU backends: Ray Data vs a single-process loop.

    python bench/bench_pipeline.py --products 2000            # the bundled sample repeated
    python bench/bench_pipeline.py --source ../shared/data/myntra --products 2000

Both runs call the same stage classes and the same shard writer on the same input; the baseline runs them in this
process one shard after another, the Ray run uses the local cluster's CPUs. Prints products/s of each and their
ratio, then peak memory (driver RSS and the sum over Ray worker processes, sampled) at two input sizes to show it
does not grow with the input. Figures are also written as JSON (--out).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402  (a Ray dependency)
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from augment import config as C  # noqa: E402
from augment import plan as P  # noqa: E402
from augment import runner  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "augment" / "sample" / "myntra_sample.parquet"


def build_input(path: Path, products: int, source: Path | None) -> None:
    """`products` rows with inline images: Myntra products.csv + images when given, else the sample repeated."""
    if source is not None:
        with open(source / "products.csv", newline="") as f:
            base = [
                {"product_id": r["id"], "title": r["productDisplayName"], "image": (source / r["image"]).read_bytes(),
                 "brand": r["brandName"] or None}
                for r in csv.DictReader(f) if (source / r["image"]).exists()
            ]
    else:
        base = pq.read_table(SAMPLE, columns=["product_id", "title", "image", "brand"]).to_pylist()
    rows = []
    for i in range(products):
        row = dict(base[i % len(base)])
        row["product_id"] = f"{row['product_id']}-{i // len(base)}"
        rows.append(row)
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=256)


class MemorySampler:
    """Peak RSS of this process and of the Ray worker processes, sampled every 0.2 s."""

    def __init__(self):
        self.driver_peak = 0
        self.workers_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        me = psutil.Process()
        while not self._stop.is_set():
            self.driver_peak = max(self.driver_peak, me.memory_info().rss)
            total = 0
            for proc in psutil.process_iter(["cmdline"]):
                cmd = " ".join(proc.info.get("cmdline") or [])
                if "ray::" in cmd or "default_worker.py" in cmd:
                    try:
                        total += proc.memory_info().rss
                    except psutil.Error:
                        pass
            self.workers_peak = max(self.workers_peak, total)
            self._stop.wait(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def timed_run(input_path: Path, out: Path, use_ray: bool, shard_size: int) -> dict:
    config = C.load()
    config.run.progress = False
    config.run.shard_size = shard_size
    plan = P.plan_run(str(input_path), str(out), config)
    with MemorySampler() as memory:
        started = time.perf_counter()
        result = runner.execute(plan, config, use_ray=use_ray)
        seconds = time.perf_counter() - started
    rows = sum(r.rows_in for r in result.records)
    return {
        "runner": "ray" if use_ray else "single-process",
        "products": rows,
        "seconds": round(seconds, 2),
        "products_per_second": round(rows / seconds, 2),
        "driver_peak_rss_mb": round(memory.driver_peak / 2**20, 1),
        "ray_workers_peak_rss_mb": round(memory.workers_peak / 2**20, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--source", type=Path, help="Myntra folder with products.csv and images/ (default: bundled sample)")
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument("--memory-scale", type=int, default=4, help="also run the Ray pipeline on N x products for memory")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="moon-bench-"))
    try:
        small = work / "input.parquet"
        build_input(small, args.products, args.source)
        config = C.load()
        config.run.num_cpus = os.cpu_count()
        runner.init_ray(config)  # once, outside the timings: ray.init costs seconds
        warm = work / "warm.parquet"
        build_input(warm, 64, args.source)
        timed_run(warm, work / "warm-run", True, args.shard_size)  # actor start-up, imports

        baseline = timed_run(small, work / "single", False, args.shard_size)
        print(f"single-process: {baseline['products']} products in {baseline['seconds']} s = "
              f"{baseline['products_per_second']} products/s (peak RSS {baseline['driver_peak_rss_mb']} MB)")
        ray_run = timed_run(small, work / "ray", True, args.shard_size)
        print(f"ray data      : {ray_run['products']} products in {ray_run['seconds']} s = "
              f"{ray_run['products_per_second']} products/s (driver peak {ray_run['driver_peak_rss_mb']} MB, "
              f"workers peak {ray_run['ray_workers_peak_rss_mb']} MB)")
        ratio = ray_run["products_per_second"] / baseline["products_per_second"]
        print(f"ratio ray / single-process: {ratio:.2f}x on {os.cpu_count()} CPUs")
        figures = {"baseline": baseline, "ray": ray_run, "ratio": round(ratio, 3)}
        if args.memory_scale > 1:
            big = work / "input-big.parquet"
            build_input(big, args.products * args.memory_scale, args.source)
            scaled = timed_run(big, work / "ray-big", True, args.shard_size)
            print(f"ray data x{args.memory_scale}: {scaled['products']} products, {scaled['products_per_second']} products/s, "
                  f"driver peak {scaled['driver_peak_rss_mb']} MB (was {ray_run['driver_peak_rss_mb']}), "
                  f"workers peak {scaled['ray_workers_peak_rss_mb']} MB (was {ray_run['ray_workers_peak_rss_mb']})")
            figures["scaled"] = scaled
        figures["hardware"] = {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()}
        if args.out:
            args.out.write_text(json.dumps(figures, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Soak: a long CPU run on Ray (classic backends) with its memory and throughput watched from start to end.

    python bench/bench_soak.py --products 5000 --out bench/results/raw/soak-5k.json
    python bench/bench_soak.py --products 50000 --out bench/results/raw/soak-50k.json     # hours on 2 cores

The catalogue is built from the Myntra titles (catalog_labels.csv.gz: id, productDisplayName, brandName) with the
Myntra photos reused in turn, named by path as large catalogues do (so the input stays small and every image is
read, validated and normalised like any other). It runs the `local` profile on a local Ray cluster, exactly as
`moon run` does, and samples every few seconds:
- memory: the driver's RSS; the RSS of every process the run started (GCS, raylet, Ray workers); the
  proportional set size (PSS) of all of them together, which counts shared pages once: the figure to compare
  with the machine's RAM; and the object store's bytes in use;
- progress: products back at the driver, from which the throughput of each tenth of the run is computed.
At the end it checks the run folder (rows in = out + quarantined, one record per shard) and prints and writes
(--out) the figures as JSON. Peak memory should stay flat when the input grows tenfold: the driver holds only
the shards in flight, Ray Data streams with backpressure.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402  (a Ray dependency)
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from augment import config as C  # noqa: E402
from augment.core import manifest  # noqa: E402
from augment import runner  # noqa: E402
from augment import plan as P  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "myntra"
MB = 2**20


def build_input(path: Path, products: int, labels: Path, images: Path) -> int:
    """`products` rows: Myntra titles and brands in file order (repeated if needed), photos reused in turn."""
    with gzip.open(labels, "rt", newline="") as f:
        base = [(r["id"], r["productDisplayName"], r["brandName"] or None) for r in csv.DictReader(f)
                if r["productDisplayName"]]
    photos = sorted(str(p) for p in images.glob("*.jpg"))
    if not base or not photos:
        raise SystemExit(f"no titles in {labels} or no .jpg under {images}")
    writer = None
    for start in range(0, products, 10_000):
        rows = []
        for i in range(start, min(products, start + 10_000)):
            pid, title, brand = base[i % len(base)]
            rows.append({"product_id": f"{pid}-{i}", "title": title, "brand": brand,
                         "image_uri": photos[i % len(photos)]})
        table = pa.Table.from_pylist(rows)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=1024)
    writer.close()
    return len(photos)


class Watcher:
    """Samples memory of this process tree and the object store, and records progress, every `every` s."""

    def __init__(self, every: float, gcs_address: str):
        self.every = every
        self.gcs_address = gcs_address
        self.samples: list[dict] = []
        self.progress: list[tuple[float, int]] = [(time.perf_counter(), 0)]
        self.rows = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def on_rows(self, n: int) -> None:
        self.rows += n
        self.progress.append((time.perf_counter(), self.rows))

    def _object_store_bytes(self) -> int | None:
        try:
            from ray._private.internal_api import memory_summary

            text = memory_summary(address=self.gcs_address, stats_only=True)
        except Exception:  # noqa: BLE001 - a missed sample is not a failed benchmark
            return None
        found = re.search(r"Plasma memory usage (\d+) MiB", text)
        return int(found.group(1)) * MB if found else None

    def sample(self) -> dict:
        me = psutil.Process()
        driver = me.memory_info().rss
        others_rss, pss = 0, 0
        for proc in [me] + me.children(recursive=True):
            try:
                info = proc.memory_full_info()
            except psutil.Error:
                continue
            pss += info.pss
            if proc.pid != me.pid:
                others_rss += info.rss
        return {"t": time.perf_counter(), "rows": self.rows, "driver_rss": driver, "ray_processes_rss": others_rss,
                "total_pss": pss, "object_store": self._object_store_bytes()}

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.sample())
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.samples.append(self.sample())


def tenths(progress: list[tuple[float, int]], total: int) -> list[float]:
    """Products per second over each tenth of the products."""
    rates, previous_time, previous_rows, k = [], progress[0][0], 0, 1
    for t, rows in progress[1:]:
        while k <= 10 and rows >= total * k / 10:
            done = total * k / 10 - previous_rows
            rates.append(round(done / max(t - previous_time, 1e-9), 2))
            previous_time, previous_rows, k = t, total * k / 10, k + 1
    return rates


def summarise(watcher: Watcher, products: int, wall: float) -> dict:
    samples = watcher.samples

    def peak(key):
        values = [s[key] for s in samples if s[key] is not None]
        return round(max(values) / MB, 1) if values else None

    per_tenth = []
    for k in range(10):
        window = [s["total_pss"] for s in samples if products * k / 10 <= s["rows"] < products * (k + 1) / 10]
        per_tenth.append(round(max(window) / MB, 1) if window else None)
    rates = tenths(watcher.progress, products)
    return {
        "products": products,
        "wall_seconds": round(wall, 1),
        "products_per_second": round(products / wall, 2),
        "products_per_second_per_tenth": rates,
        "throughput_spread_middle_tenths": round(max(rates[1:9]) / min(rates[1:9]), 2) if len(rates) == 10 else None,
        "peak_total_pss_mb": peak("total_pss"),
        "peak_driver_rss_mb": peak("driver_rss"),
        "peak_ray_processes_rss_mb": peak("ray_processes_rss"),
        "peak_object_store_mb": peak("object_store"),
        "peak_total_pss_mb_per_tenth": per_tenth,
        "samples": len(samples),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=50_000)
    parser.add_argument("--labels", type=Path, default=DATA / "catalog_labels.csv.gz")
    parser.add_argument("--images", type=Path, default=DATA / "images")
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count())
    parser.add_argument("--shard-size", type=int, help="rows per shard (default: the local profile's)")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between memory samples")
    parser.add_argument("--work", type=Path, help="folder for the input and the run (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the input and the run folder")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="moon-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        source = work / "catalogue.parquet"
        photos = build_input(source, args.products, args.labels, args.images)
        overrides = {"run": {"progress": False, "num_cpus": args.num_cpus},
                     "input": {"allowed_roots": [str(args.images.resolve())]}}
        if args.shard_size:
            overrides["run"]["shard_size"] = args.shard_size
        config = C.load(overrides=overrides)
        out = work / "run"
        plan = P.plan_run(str(source), str(out), config)
        runner.init_ray(config)
        import ray

        runner.remove_stale_temp_files(plan)
        with Watcher(args.every, ray.get_runtime_context().gcs_address) as watcher:
            started = time.perf_counter()
            runner.run_on_ray(plan, config, on_rows=watcher.on_rows)
            wall = time.perf_counter() - started
        figures = summarise(watcher, args.products, wall)
        totals = manifest.totals(manifest.load(str(out)).values())
        figures["rows_in"], figures["rows_out"], figures["rows_quarantined"] = (
            totals["rows_in"], totals["rows_out"], totals["rows_quarantined"])
        figures["rows_lost"] = args.products - totals["rows_out"] - totals["rows_quarantined"]
        figures["quarantine_reasons"] = totals["quarantine_reasons"]
        figures["shards"] = totals["shards"]
        figures["output_gb"] = round(totals["bytes"] / 2**30, 2)
        figures["setup"] = {"profile": "local", "shard_size": config.run.shard_size, "num_cpus": args.num_cpus,
                            "photos_reused": photos, "cpus": os.cpu_count(), "machine": platform.machine(),
                            "python": platform.python_version(), "load_average_at_end": os.getloadavg()}
        ray.shutdown()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if figures["rows_lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

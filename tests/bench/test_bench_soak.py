"""The soak benchmark runs end to end on a tiny generated catalogue and reports memory and throughput."""
from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.photos import photo_file

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_soak.py"


@pytest.mark.slow
def test_tiny_soak_reports_memory_throughput_and_no_lost_rows(tmp_path):
    labels = tmp_path / "labels.csv.gz"
    with gzip.open(labels, "wt", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "productDisplayName", "brandName"])
        for i, title in enumerate(["Nike Men Blue Running Shoes", "Puma Women Grey Track Pants", "Titan Men Watch"]):
            writer.writerow([100 + i, title, title.split()[0]])
    images = tmp_path / "images"
    images.mkdir()
    for i, colour in enumerate([(200, 30, 30), (30, 200, 30)]):
        (images / f"{i}.jpg").write_bytes(photo_file(64, 80, colour))
    out = tmp_path / "soak.json"
    cmd = [sys.executable, str(SCRIPT), "--products", "40", "--labels", str(labels), "--images", str(images),
           "--shard-size", "4", "--num-cpus", "2", "--every", "0.5", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert (figures["rows_in"], figures["rows_out"], figures["rows_lost"], figures["shards"]) == (40, 40, 0, 10)
    assert len(figures["products_per_second_per_tenth"]) == 10
    assert figures["peak_total_pss_mb"] > figures["peak_driver_rss_mb"] > 0
    assert figures["peak_object_store_mb"] is not None

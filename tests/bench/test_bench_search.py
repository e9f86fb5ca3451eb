"""bench/bench_search.py runs end to end at a small size and reports what it promises (no timing asserted)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_search_small(tmp_path):
    out = tmp_path / "search.json"
    subprocess.run(
        [sys.executable, "bench/bench_search.py", "--candidates", "3000", "--dim", "32", "--queries", "50",
         "--clusters", "30", "--methods", "exact-parquet,ivf-flat,hnsw", "--out", str(out)],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=600,
    )
    report = json.loads(out.read_text())
    methods = {r["method"]: r for r in report["results"]}
    assert list(methods) == ["exact-memory", "exact-parquet", "ivf-flat", "hnsw"]
    assert all(r["peak_rss_mib"] > 0 for r in report["results"])
    assert methods["exact-memory"]["queries_per_second"] > 0 and methods["exact-parquet"]["queries"] == 50
    recalls = [s["recall_at_10"] for s in methods["ivf-flat"]["settings"]]
    assert all(0.0 <= r <= 1.0 for r in recalls) and recalls == sorted(recalls)  # more lists scanned, never less
    assert methods["ivf-flat"]["lists"] == 54  # about sqrt(3000)

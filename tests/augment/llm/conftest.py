"""Real products for the MLLM stage tests: titles and photos from the bundled Myntra sample (MIT)."""
from pathlib import Path

import pyarrow.parquet as pq
import pytest

SAMPLE = Path(__file__).resolve().parents[3] / "augment" / "sample" / "myntra_sample.parquet"


@pytest.fixture(scope="session")
def products():
    """The first 8 sample products as a stage batch (entities left empty; tests add their own)."""
    rows = pq.read_table(SAMPLE).slice(0, 8).to_pylist()
    return {
        "product_id": [r["product_id"] for r in rows],
        "title": [r["title"] for r in rows],
        "description": [None] * len(rows),
        "entities": [[] for _ in rows],
        "_image": [r["image"] for r in rows],
    }

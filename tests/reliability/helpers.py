"""What the reliability tests share: running `moon` as a real process (testkit.cli), and checking a run folder the way its
readers see it (pyarrow.dataset over data/ and quarantine/, the manifest)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.dataset as pads

from augment.core import manifest
from augment.core import schema as S
from testkit.cli import ROOT, moon  # noqa: F401  (the reliability tests run moon through these)

SAMPLE = ROOT / "augment" / "sample" / "myntra_sample.parquet"


def visible_rows(folder: Path, columns: list[str] | None = None) -> list[dict]:
    """Rows a reader of `folder` sees with pyarrow.dataset (hidden and underscore files are skipped)."""
    if not folder.exists() or not any(folder.iterdir()):
        return []
    return pads.dataset(str(folder), format="parquet").to_table(columns=columns).to_pylist()


def deterministic_rows(run_dir: Path) -> list[dict]:
    """Every visible data row, deterministic columns only, in product order."""
    rows = visible_rows(run_dir / manifest.DATA_DIR, list(S.DETERMINISTIC_COLUMNS))
    return sorted(rows, key=lambda r: r["product_id"])


def temp_files(run_dir: Path) -> list[Path]:
    return sorted(run_dir.rglob(".*.tmp-*"))


def assert_complete_and_clean(run_dir: Path, shards: int, rows_in: int) -> dict:
    """The run folder as its readers must find it after a run completed: one record per shard, rows in = out +
    quarantined per shard and in total, exactly the committed files visible, no product twice, no temp files."""
    records = manifest.load(str(run_dir))
    assert len(records) == shards
    committed = []  # the shard of each whole record line (a line a crash tore mid-write is no record)
    for line in (run_dir / manifest.MANIFEST).read_text().splitlines():
        try:
            committed.append(json.loads(line)["shard_id"])
        except (ValueError, KeyError):
            continue
    assert sorted(committed) == sorted(records), "a shard was committed more than once"
    for record in records.values():
        assert record.rows_in == record.rows_out + record.rows_quarantined, record
    totals = manifest.totals(records.values())
    assert totals["rows_in"] == rows_in
    data = visible_rows(run_dir / manifest.DATA_DIR, ["product_id"])
    quarantined = visible_rows(run_dir / manifest.QUARANTINE_DIR, ["lineage"])
    assert len(data) == totals["rows_out"]
    assert len(quarantined) == totals["rows_quarantined"]
    assert len(data) + len(quarantined) == rows_in
    duplicates = [pid for pid, n in Counter(r["product_id"] for r in data).items() if n > 1]
    assert duplicates == []
    committed = {r.data_file for r in records.values() if r.data_file} | {
        r.quarantine_file for r in records.values() if r.quarantine_file}
    on_disk = {str(p.relative_to(run_dir)) for d in (manifest.DATA_DIR, manifest.QUARANTINE_DIR)
               for p in (run_dir / d).glob("*.parquet")}
    assert on_disk == committed
    assert temp_files(run_dir) == []
    return totals

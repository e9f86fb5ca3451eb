"""The run folder's manifest: one record per committed shard, and the commit protocol around it.

A shard is committed when its manifest record exists, and only then:
1. the data shard (and its quarantine file, if any rows were rejected) is published atomically
   (`storage.write_file_atomic`): `data/<shard_id>.parquet`, `quarantine/<shard_id>.parquet`;
2. the record is appended to `_manifest.jsonl` (local: one O_APPEND write, fsynced), or on S3 written as its
   own object `_manifest.d/<shard_id>.json` (S3 cannot append), which `consolidate()` folds into
   `_manifest.jsonl` at the end of a run.
A crash between 1 and 2 leaves a data file with no record: the shard is processed again and the file replaced
by an identical one, never duplicated, because its name is the deterministic shard id.
"""
from __future__ import annotations

import dataclasses
import json
import time
from typing import Any, Iterable

from augment.core import storage

MANIFEST = "_manifest.jsonl"
MANIFEST_DIR = "_manifest.d"
RUN_FILE = "_run.json"
DATA_DIR = "data"
QUARANTINE_DIR = "quarantine"
REPORT_DIR = "report"


@dataclasses.dataclass
class ShardRecord:
    shard_id: str
    source_uri: str
    row_start: int
    row_stop: int
    rows_in: int
    rows_out: int
    rows_quarantined: int
    quarantine_reasons: dict[str, int]
    data_file: str | None  # relative to the run folder; null when every row was quarantined
    quarantine_file: str | None
    checksum: str  # sha256 of the data file bytes (of the quarantine file when there is no data file)
    bytes: int
    config_hash: str
    code_version: str
    run_id: str
    schema_version: str
    timings: dict[str, float]  # seconds per stage summed over the shard's rows, plus write
    committed_at: float = dataclasses.field(default_factory=time.time)
    variant_status: dict[str, int] = dataclasses.field(default_factory=dict)  # ok / filtered / failed counts

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ShardRecord":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def commit(run_uri: str, record: ShardRecord) -> None:
    """Append the commit record of a shard whose files are already published."""
    if record.rows_in != record.rows_out + record.rows_quarantined:
        raise AssertionError(
            f"shard {record.shard_id}: rows in {record.rows_in} != out {record.rows_out} + "
            f"quarantined {record.rows_quarantined}"
        )
    if storage.is_s3(run_uri):
        storage.write_atomic(storage.join(run_uri, MANIFEST_DIR, f"{record.shard_id}.json"), record.to_json().encode())
    else:
        storage.makedirs(run_uri)
        storage.append_line(storage.join(run_uri, MANIFEST), record.to_json())


def load(run_uri: str) -> dict[str, ShardRecord]:
    """Committed shards by id. Tolerates a torn last line (a crash mid-append is not a commit)."""
    records: dict[str, ShardRecord] = {}
    manifest_uri = storage.join(run_uri, MANIFEST)
    if storage.exists(manifest_uri):
        for line in storage.read_text(manifest_uri).splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue  # torn write of an uncommitted record
            record = ShardRecord.from_dict(data)
            records[record.shard_id] = record
    if storage.is_s3(run_uri):
        for uri in storage.list_files(storage.join(run_uri, MANIFEST_DIR), ".json"):
            record = ShardRecord.from_dict(json.loads(storage.read_text(uri)))
            records[record.shard_id] = record
    return records


def consolidate(run_uri: str) -> dict[str, ShardRecord]:
    """Every committed shard's record (as `load`); on S3 also rewrites `_manifest.jsonl` from the commit records."""
    records = load(run_uri)
    if storage.is_s3(run_uri):
        body = "".join(r.to_json() + "\n" for r in sorted(records.values(), key=lambda r: r.shard_id))
        storage.write_atomic(storage.join(run_uri, MANIFEST), body.encode())
    return records


def data_files(run_uri: str, records: Iterable[ShardRecord] | None = None) -> list[str]:
    """URIs of the committed data shards, in shard order: what trainers and the report read."""
    records = load(run_uri).values() if records is None else records
    ordered = sorted(records, key=lambda r: (r.source_uri, r.row_start))
    return [storage.join(run_uri, r.data_file) for r in ordered if r.data_file]


def committed_data_files(run_uri: str) -> list[str]:
    """`data_files`, or a FileNotFoundError that says why the folder has none."""
    records = load(run_uri) if storage.exists(run_uri) else {}
    files = data_files(run_uri, records.values())
    if files:
        return files
    if records:
        raise FileNotFoundError(f"{run_uri}: every product of its {len(records)} committed shards was quarantined "
                                "(see quarantine/ and `moon report`)")
    if storage.exists(storage.join(run_uri, RUN_FILE)):
        raise FileNotFoundError(f"{run_uri}: no committed shards; its run failed or was interrupted before the first "
                                "shard was committed: run `moon run` again with the same --input, config and --output "
                                "to resume it")
    raise FileNotFoundError(f"{run_uri} is not a run folder of `moon run` (no {RUN_FILE})")


def quarantine_files(run_uri: str, records: Iterable[ShardRecord] | None = None) -> list[str]:
    """URIs of the committed quarantine files, in shard order."""
    records = load(run_uri).values() if records is None else records
    ordered = sorted(records, key=lambda r: (r.source_uri, r.row_start))
    return [storage.join(run_uri, r.quarantine_file) for r in ordered if r.quarantine_file]


def totals(records: Iterable[ShardRecord]) -> dict[str, Any]:
    """Run-level sums: rows in/out/quarantined, reasons, stage seconds, variant statuses."""
    out: dict[str, Any] = {
        "shards": 0, "rows_in": 0, "rows_out": 0, "rows_quarantined": 0,
        "quarantine_reasons": {}, "timings": {}, "variant_status": {}, "bytes": 0,
    }
    for r in records:
        out["shards"] += 1
        out["rows_in"] += r.rows_in
        out["rows_out"] += r.rows_out
        out["rows_quarantined"] += r.rows_quarantined
        out["bytes"] += r.bytes
        for key in ("quarantine_reasons", "timings", "variant_status"):
            for name, value in getattr(r, key).items():
                out[key][name] = out[key].get(name, 0) + value
    return out

"""What the report shows, read from a run folder: run facts, a deterministic sample of products, quarantine examples.

Everything here reads through `augment.core.storage`, so local and s3:// runs are the same. It never loads a whole run:
the sample reads only the `product_id` column of every shard (of `SAMPLE_SHARDS` shards picked by hash in a
bigger run), then the full rows of the few shards that hold a sampled product; quarantine examples stop reading once every reason has its examples. No HTML here.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import heapq
import json
import logging
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from augment.core import manifest, storage
from augment.core.util import stable_hash

log = logging.getLogger(__name__)

# Columns of a quarantined row worth showing; images and raw JSON stay out of the report.
QUARANTINE_COLUMNS = ("product_id", "title", "stage", "reason", "detail", "lineage")
RAW_PREVIEW_CHARS = 160
EVALUATIONS = "_evaluations.jsonl"  # one line per `moon eval` of a model trained on the run (model/evaluations.py)
READ_THREADS = 16  # product_id columns read at once
# Shards whose products the sample is drawn from, at most: the ones of smallest `sample_key(shard id)`. A run of
# 100,000s of shards is sampled from a few hundred reads, not one per shard; smaller runs from every shard.
SAMPLE_SHARDS = 512
FULL_READ_THREADS = 4  # whole shards (with images) read at once


@dataclasses.dataclass
class RunFacts:
    run_uri: str
    run_info: dict[str, Any]  # _run.json, or {} for a folder without one
    records: list[manifest.ShardRecord]  # committed shards in catalogue order
    totals: dict[str, Any]  # manifest.totals over the records
    # shard id -> its data or quarantine file that is missing or no longer of its committed size (manifest.lost_files)
    changed: dict[str, str] = dataclasses.field(default_factory=dict)
    # product ids the sample found in two shard files (a shard file overwritten by another shard's)
    repeated_ids: set[str] = dataclasses.field(default_factory=set)

    @property
    def elapsed_seconds(self) -> float | None:
        """From the run's creation to its last commit (includes any pause between a crash and its resume)."""
        started = self.run_info.get("created_at")
        if not isinstance(started, (int, float)) or isinstance(started, bool) or not self.records:
            return None  # none recorded, or not seconds since 1970 (written by another tool)
        return max(0.0, max(r.committed_at for r in self.records) - float(started))

    @property
    def products_per_second(self) -> float | None:
        elapsed = self.elapsed_seconds
        return self.totals["rows_in"] / elapsed if elapsed else None


def load_run(run_uri: str) -> RunFacts:
    records = sorted(manifest.load(run_uri).values(), key=lambda r: (r.source_uri, r.row_start))
    if not records:
        raise FileNotFoundError(f"{run_uri} has no committed shards (no {manifest.MANIFEST} records)")
    run_info = manifest.read_run_file(run_uri) or {}
    return RunFacts(run_uri=run_uri, run_info=run_info, records=records, totals=manifest.totals(records),
                    changed=manifest.lost_files(run_uri, records))


def sample_key(product_id: str) -> str:
    """The order of the report's sample: a hash of the product id, the same on every machine and rerun."""
    return stable_hash("report-sample", product_id, length=16)


def sample_products(facts: RunFacts, size: int) -> list[dict[str, Any]]:
    """The `size` products with the smallest sample_key, full rows, in catalogue order (shard, source row)."""
    if size <= 0:
        return []
    chosen: list[tuple[int, str, str]] = []  # max-heap by key via negated ordering: (-key, id, file)
    records = [r for r in facts.records if r.data_file]
    if len(records) > SAMPLE_SHARDS:
        records = heapq.nsmallest(SAMPLE_SHARDS, records, key=lambda r: sample_key(r.shard_id))
    files = manifest.data_files(facts.run_uri, records)
    # Many small reads (one per shard, on S3 one request each): overlap them.
    with concurrent.futures.ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        id_lists = pool.map(lambda uri: (uri, _read(uri, ["product_id"]).column("product_id").to_pylist()), files)
        seen: set[str] = set()
        for uri, ids in id_lists:
            facts.repeated_ids.update(seen.intersection(ids))
            seen.update(ids)
            _keep_smallest(chosen, ids, uri, size)
    by_file: dict[str, set[str]] = {}
    for _, product_id, uri in chosen:
        by_file.setdefault(uri, set()).add(product_id)

    def sampled_rows(uri: str) -> list[dict[str, Any]]:
        table = _read(uri)  # whole shard: a row's images cannot be read apart from its row group
        return table.filter(pc.is_in(table.column("product_id"), pa.array(sorted(by_file[uri]), pa.string()))).to_pylist()

    rows: list[dict[str, Any]] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=FULL_READ_THREADS) as pool:
        for part in pool.map(sampled_rows, sorted(by_file)):
            rows.extend(part)
    rows.sort(key=lambda r: ((r.get("lineage") or {}).get("source_uri") or "", (r.get("lineage") or {}).get("source_row") or 0))
    return rows


def _keep_smallest(heap: list[tuple[int, str, str]], ids: list[str], uri: str, size: int) -> None:
    for product_id in ids:
        entry = (-int(sample_key(product_id), 16), product_id, uri)
        if len(heap) < size:
            heapq.heappush(heap, entry)
        elif entry > heap[0]:
            heapq.heapreplace(heap, entry)


def quarantine_examples(facts: RunFacts, per_reason: int = 3) -> list[dict[str, Any]]:
    """Up to `per_reason` quarantined rows for every reason, in catalogue order, without their images. Only the
    files that hold them are read (each shard's record counts its reasons), at most `per_reason` per reason."""
    found: list[dict[str, Any]] = []
    uris = example_files(facts.records, facts.run_uri, per_reason)
    wanted = {reason: per_reason for reason in facts.totals["quarantine_reasons"]}
    with concurrent.futures.ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        for table in pool.map(_quarantine_table, uris):
            for row in map(_as_written, table.to_pylist()):
                reason = row.get("reason") or "unknown"
                if wanted.get(reason, 0) <= 0:
                    continue
                wanted[reason] -= 1
                raw = row.pop("raw", None)
                if not row.get("title") and raw:
                    row["raw_preview"] = raw[:RAW_PREVIEW_CHARS] + ("…" if len(raw) > RAW_PREVIEW_CHARS else "")
                found.append(row)
    return found


def _as_written(row: dict[str, Any]) -> dict[str, Any]:
    """A quarantined row with the types this version writes: a file of another version or tool may hold a number
    or bytes where text is, or lineage as text; shown as text, or left out, instead of failing the report."""
    for key in (*QUARANTINE_COLUMNS, "raw"):
        value = row.get(key)
        if key == "lineage":
            row[key] = value if isinstance(value, dict) else None
        elif isinstance(value, bytes):
            row[key] = value.decode("utf-8", errors="replace")
        elif value is not None and not isinstance(value, str):
            row[key] = str(value)
    return row


def example_files(records: list[manifest.ShardRecord], run_uri: str, per_reason: int) -> list[str]:
    """The quarantine files that hold the first `per_reason` rows of each reason, in the order of `records`
    (RunFacts.records: catalogue order)."""
    wanted = {reason: per_reason for record in records for reason in record.quarantine_reasons}
    uris = []
    for record in records:
        if not record.quarantine_file or not any(wanted.get(k, 0) > 0 for k in record.quarantine_reasons):
            continue
        uris.append(storage.join(run_uri, record.quarantine_file))
        for reason, count in record.quarantine_reasons.items():
            wanted[reason] = max(0, wanted[reason] - count)
    return uris


def _quarantine_table(uri: str) -> pa.Table:
    names = set(_schema(uri).names)
    return _read(uri, [c for c in (*QUARANTINE_COLUMNS, "raw") if c in names])


def _read(uri: str, columns: list[str] | None = None) -> pa.Table:
    fs, path = storage.filesystem(uri)
    with _committed_file(uri):
        return pq.read_table(path, filesystem=fs, columns=columns)


def _schema(uri: str) -> pa.Schema:
    fs, path = storage.filesystem(uri)
    with _committed_file(uri):
        return pq.read_schema(path, filesystem=fs)


@contextlib.contextmanager
def _committed_file(uri: str):
    """A committed shard file that is gone or unreadable: one line naming it and how to redo its shard."""
    try:
        yield
    except FileNotFoundError:
        raise FileNotFoundError(f"{uri}: a committed shard's file is missing; `{_redo(uri)}` (the run's own command, "
                                "with its config) redoes its shard") from None
    except (pa.ArrowInvalid, OSError) as exc:
        words = ("parquet", "thrift", "decompress", "corrupt")  # the file, not the storage: a page that does not decode
        if not isinstance(exc, pa.ArrowInvalid) and not any(w in str(exc).lower() for w in words):
            raise  # storage that cannot be reached: its own message
        raise ValueError(f"{uri}: not a readable Parquet file ({' '.join(str(exc).split())}); delete it and rerun "
                         f"`{_redo(uri)}` (with the "
                         "run's config) to redo its shard") from None


def _redo(uri: str) -> str:
    """The command that redoes the shard of a committed file `uri`: the run's, with the input its saved plan names
    (without --input, moon run takes the bundled sample and refuses the run as one of another input)."""
    import shlex

    from augment import plan as P

    run = next((uri.rpartition(f"/{folder}/")[0] for folder in (manifest.DATA_DIR, manifest.QUARANTINE_DIR)
                if f"/{folder}/" in uri), "RUN")
    try:
        source = f"--input {shlex.quote(P.read_header(run)['input_uri'])} "
    except (P.NoSavedPlan, ValueError, KeyError, OSError):
        source = "--input <the run's input> "
    return f"moon run {source}--output {shlex.quote(run)}"


def latest_evaluation(run_uri: str) -> dict[str, Any] | None:
    """The latest evaluation of a model trained on the run (`_evaluations.jsonl`), or None."""
    uri = storage.join(run_uri, EVALUATIONS)
    if not storage.exists(uri):
        return None
    records = []
    for number, line in enumerate(storage.read_text(uri).splitlines(), 1):
        try:
            record = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:  # a line cut short (a crash mid-append), or edited by hand
            record = "not JSON"
        if record is None:
            continue
        when = record.get("evaluated_at") if isinstance(record, dict) else None
        if not isinstance(when, (int, float)) or isinstance(when, bool):
            log.warning("%s line %d is not an evaluation record (%s): left out of the report", uri, number,
                        record if isinstance(record, str) else "no evaluated_at time")
            continue
        records.append(record)
    return max(records, key=lambda x: x.get("evaluated_at", 0)) if records else None

"""Turning processed rows into committed shards: data file, quarantine file, manifest record.

The driver streams processed batches into `ShardWriter.add`; rows are bucketed by shard and, once every row of
a shard has arrived, the shard is written on a small thread pool while the cluster keeps working. Memory is
bounded by the shards in flight, not by the input. `write_shard` is also what the single-process runner calls.
"""
from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import time
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from augment.core import faults, manifest, storage
from augment.core import schema as S
from augment.plan import Plan, ShardSpec
from augment.stages import RunContext

log = logging.getLogger(__name__)


class IncompleteShards(RuntimeError):
    """Rows of some shards never came back from the stages: nothing of those shards was committed."""


class ShardWriteError(OSError):
    """A shard file could not be written or published (read-only folder, disk full, storage error). Nothing of
    the shard is visible: the temp file is removed and no manifest record is written."""

    def __init__(self, uri: str, cause: OSError):
        text = str(cause).strip()
        if cause.errno:
            reason = os.strerror(cause.errno)  # pyarrow's own wording adds noise around the OS reason
        else:
            reason = cause.strerror or (text.splitlines()[0] if text else type(cause).__name__)
        super().__init__(cause.errno, reason, uri)

    def __str__(self) -> str:
        return f"cannot write shard file {self.filename}: {self.strerror}"


def carried_schema(input_schema: pa.Schema) -> pa.Schema:
    """The input columns a shard carries through: the contract and pass-through columns, no bookkeeping."""
    return pa.schema([f for f in input_schema if not f.name.startswith("_")])


def _lineage(table: pa.Table, context: RunContext) -> pa.Array:
    n = table.num_rows
    return pa.StructArray.from_arrays(
        [
            pa.array([context.run_id] * n, pa.string()),
            table.column(S.SOURCE_URI).combine_chunks(),
            table.column(S.SOURCE_ROW).combine_chunks(),
            table.column(S.SHARD_ID).combine_chunks(),
            pa.array([context.config_hash] * n, pa.string()),
            pa.array([context.code_version] * n, pa.string()),
        ],
        fields=list(S.LINEAGE),
    )


def data_table(table: pa.Table, input_schema: pa.Schema, context: RunContext) -> pa.Table:
    carried = carried_schema(input_schema)
    out_schema = S.output_schema(carried)
    columns = []
    for field in out_schema:
        if field.name == "lineage":
            columns.append(_lineage(table, context))
        elif field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=out_schema)


def quarantine_table(table: pa.Table, input_schema: pa.Schema, context: RunContext) -> pa.Table:
    carried = carried_schema(input_schema)
    out_schema = S.quarantine_schema(carried)
    sources = {
        "stage": S.QUARANTINE_STAGE, "reason": S.QUARANTINE_REASON, "detail": S.QUARANTINE_DETAIL, "raw": S.RAW_ROW,
    }
    columns = []
    for field in out_schema:
        if field.name == "lineage":
            columns.append(_lineage(table, context))
        elif field.name in sources and sources[field.name] in table.column_names:
            columns.append(table.column(sources[field.name]).cast(field.type))
        elif field.name in table.column_names and field.name not in sources:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=out_schema)


def _parquet_compression(schema: pa.Schema, codec: str) -> dict[str, str]:
    """zstd for everything but encoded images, which do not compress further."""
    out = {}
    for field in schema:
        if field.name == "image" and pa.types.is_binary(field.type):
            out[field.name] = "none"
        elif field.name == "variants":
            for sub in S.VARIANT:
                out[f"variants.list.element.{sub.name}"] = "none" if sub.name == "image" else codec
        else:
            out[field.name] = codec
    return out


def _write_parquet(table: pa.Table, target_uri: str, codec: str) -> tuple[str, int]:
    """Write to a hidden temp file, publish atomically; returns (sha256, bytes)."""
    try:
        with storage.publishing(target_uri) as tmp:
            pq.write_table(
                table, tmp, compression=_parquet_compression(table.schema, codec),
                row_group_size=max(1, table.num_rows), use_dictionary=False,
                # Only the image's null count (images are too long for min/max): a reader that counts products
                # without an image (the trainer's count_split) skips the image bytes when the footer says none.
                write_statistics=["image"] if "image" in table.schema.names else False,
            )
            faults.point("during_shard_write")  # the temp file is complete, not yet published
            digest = storage.sha256(str(tmp))  # as `moon verify` reads it back
            size = tmp.stat().st_size
        return digest, size
    except OSError as exc:
        raise ShardWriteError(target_uri, exc) from exc


def _check_rows(spec: ShardSpec, rows: list[int]) -> None:
    """IncompleteShards unless `rows` (sorted) are the shard's own rows, each once: a count that adds up is not
    enough (a row that came back twice would stand in for one that never did)."""
    own = range(spec.row_start, spec.row_stop)
    if rows == list(own):
        return
    problems = {
        "came back twice": sorted({r for r, after in zip(rows, rows[1:]) if r == after}),
        "missing": sorted(set(own) - set(rows)),
        "not its own": sorted(set(rows) - set(own)),
    }
    found = "; ".join(f"{what}: {', '.join(map(str, got[:5]))}{', ...' if len(got) > 5 else ''}"
                      for what, got in problems.items() if got)
    raise IncompleteShards(f"shard {spec.shard_id}: rows {spec.row_start}..{spec.row_stop - 1} expected once each; "
                           f"{found}")


def write_shard(spec: ShardSpec, table: pa.Table, plan: Plan, context: RunContext, codec: str = "zstd") -> manifest.ShardRecord:
    """Commit one shard: quarantine file, data file, then the manifest record (the commit point)."""
    started = time.perf_counter()
    if table.num_rows != spec.num_rows:
        raise IncompleteShards(f"shard {spec.shard_id}: {table.num_rows} rows processed, {spec.num_rows} expected")
    table = table.sort_by([(S.SOURCE_ROW, "ascending")])
    _check_rows(spec, table.column(S.SOURCE_ROW).to_pylist())
    rejected = pc.is_valid(table.column(S.QUARANTINE_REASON))
    good = table.filter(pc.invert(rejected))
    bad = table.filter(rejected)
    data_file = quarantine_file = None
    checksum, size = quarantine_checksum, quarantine_bytes = "", 0
    faults.point("before_shard_write")
    quarantine_uri = storage.join(plan.run_uri, manifest.QUARANTINE_DIR, f"{spec.shard_id}.parquet")
    data_uri = storage.join(plan.run_uri, manifest.DATA_DIR, f"{spec.shard_id}.parquet")
    if bad.num_rows:
        quarantine_file = f"{manifest.QUARANTINE_DIR}/{spec.shard_id}.parquet"
        checksum, size = _write_parquet(quarantine_table(bad, plan.input_schema, context), quarantine_uri, codec)
        quarantine_checksum, quarantine_bytes = checksum, size
    if good.num_rows:
        data_file = f"{manifest.DATA_DIR}/{spec.shard_id}.parquet"
        checksum, size = _write_parquet(data_table(good, plan.input_schema, context), data_uri, codec)
    # An interrupted earlier attempt at this shard may have published a file this attempt does not write (its
    # rows were quarantined then and are fine now, or the reverse): readers must not see those rows twice.
    if not bad.num_rows:
        storage.delete(quarantine_uri)
    if not good.num_rows:
        storage.delete(data_uri)
    faults.point("after_data_write")  # published but not committed: a crash here must not duplicate rows
    timings = {
        name[len(S.TIMING_PREFIX):]: float(pc.sum(table.column(name)).as_py() or 0.0)
        for name in table.column_names if name.startswith(S.TIMING_PREFIX)
    }
    timings["write"] = time.perf_counter() - started
    record = manifest.ShardRecord(
        shard_id=spec.shard_id, source_uri=spec.source_uri, row_start=spec.row_start, row_stop=spec.row_stop,
        rows_in=spec.num_rows, rows_out=good.num_rows, rows_quarantined=bad.num_rows,
        quarantine_reasons=dict(Counter(bad.column(S.QUARANTINE_REASON).to_pylist())),
        data_file=data_file, quarantine_file=quarantine_file, checksum=checksum, bytes=size,
        config_hash=context.config_hash, code_version=context.code_version, run_id=context.run_id,
        schema_version=S.SCHEMA_VERSION, timings=timings, variant_status=_variant_status(good),
        enrichment_status=_enrichment_status(good),
        background_status=_counts(good, S.BACKGROUND_STATUS), quarantine_checksum=quarantine_checksum,
        quarantine_bytes=quarantine_bytes,
    )
    manifest.commit(plan.run_uri, record)
    faults.point("after_commit")
    return record


def _variant_status(table: pa.Table) -> dict[str, int]:
    if "variants" not in table.column_names or table.num_rows == 0:
        return {}
    flat = pc.list_flatten(table.column("variants"))
    if len(flat) == 0:
        return {}
    statuses = pc.struct_field(flat, "status").to_pylist()
    kinds = pc.struct_field(flat, "kind").to_pylist()
    counts: Counter = Counter()
    for kind, status in zip(kinds, statuses):
        bucket = (status or "missing").split(":", 1)[0]
        counts[bucket] += 1
        counts[f"{kind}:{bucket}"] += 1
    return dict(counts)


def _enrichment_status(table: pa.Table) -> dict[str, int]:
    """Written rows by the prefix of their `enrichment.status` (ok, rejected, fallback); rows without one (the
    enrich_title stage did not run) are not counted."""
    if "enrichment" not in table.column_names or table.num_rows == 0 \
            or not pa.types.is_struct(table.column("enrichment").type):
        return {}
    statuses = pc.struct_field(table.column("enrichment"), "status").to_pylist()
    return dict(Counter(status.split(":", 1)[0] for status in statuses if status))


def _counts(table: pa.Table, column: str) -> dict[str, int]:
    """Written rows by the value of an internal column; {} where no stage wrote it."""
    if column not in table.column_names:
        return {}
    return {value: n for value, n in Counter(table.column(column).to_pylist()).items() if value is not None}


class ShardWriter:
    """Buckets streamed rows by shard and commits each shard once all its rows are in."""

    def __init__(self, plan: Plan, context: RunContext, codec: str, threads: int = 2):
        self.plan = plan
        self.context = context
        self.codec = codec
        self.specs = {s.shard_id: s for s in plan.pending}
        self.buffers: dict[str, list[pa.Table]] = {}
        self.received: Counter = Counter()
        self.threads = max(1, threads)
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="shard-writer")
        self.futures: list[concurrent.futures.Future] = []
        self.lock = threading.Lock()
        self.records: list[manifest.ShardRecord] = []

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        ids = table.column(S.SHARD_ID)
        for shard in pc.unique(ids).to_pylist():
            part = table.filter(pc.equal(ids, shard))
            if shard not in self.specs:
                raise IncompleteShards(f"rows of unplanned shard {shard} came back from the stages")
            self.buffers.setdefault(shard, []).append(part)
            self.received[shard] += part.num_rows
            if self.received[shard] == self.specs[shard].num_rows:
                parts = self.buffers.pop(shard)
                self._throttle()
                self.futures.append(self.pool.submit(self._commit, self.specs[shard], pa.concat_tables(parts)))
            elif self.received[shard] > self.specs[shard].num_rows:
                raise IncompleteShards(f"shard {shard}: more rows came back than it has ({self.received[shard]})")
        self._raise_failed()

    def _commit(self, spec: ShardSpec, table: pa.Table) -> manifest.ShardRecord:
        record = write_shard(spec, table, self.plan, self.context, self.codec)
        with self.lock:
            self.records.append(record)
        return record

    def _throttle(self) -> None:
        """Wait while too many complete shards queue for the writer threads: memory stays bounded when storage is
        slower than the cluster (the stream then backs up into Ray Data's own backpressure)."""
        while True:
            pending = [f for f in self.futures if not f.done()]
            if len(pending) < 2 * self.threads:
                return
            concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)

    def _raise_failed(self) -> None:
        done = [f for f in self.futures if f.done()]
        self.futures = [f for f in self.futures if not f.done()]
        for future in done:
            future.result()  # re-raises a write failure in the driver (once: it has left the list)

    def close(self, require_all: bool = True) -> list[manifest.ShardRecord]:
        """Wait for the shards being written; raise IncompleteShards if some never completed (unless not
        `require_all`, after the run already failed)."""
        try:
            for future in self.futures:
                future.result()
        finally:
            self.pool.shutdown(wait=True)
        if not require_all:
            return self.records
        missing = {s: self.specs[s].num_rows - self.received[s] for s in self.specs if self.received[s] < self.specs[s].num_rows}
        if missing:
            sample = ", ".join(f"{k} ({v} rows)" for k, v in list(missing.items())[:5])
            raise IncompleteShards(f"{len(missing)} shards did not complete and were not committed: {sample}")
        return self.records

"""Composing stages: reading a shard's rows, running a group of stages over an Arrow batch, isolating failures.

`StageChain` is the callable a Ray Data `map_batches` actor pool runs (and the single-process runner calls
directly): it builds its stages once, calls `setup()` once (models are kept per process, augment.core.models, so
an actor loads them once for every shard of the job), then for each batch runs every stage over the rows that are
still live. The seconds spent loading models are charged to the first batch after the load (`_t_model_load`).
Rows a stage rejects are marked (`_quarantine_*` columns) and skipped by later stages; they travel on to the
writer, so no row ever disappears. If a stage raises on a batch, the batch is retried one row at a time and only
the rows that still fail are quarantined (`stage_error:<Exception>`): one bad product cannot end a run.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from augment import io
from augment.core import faults, models, storage
from augment.core.errors import stage_error
from augment.core import schema as S
from augment.stages import Rejection, RunContext, Stage, StageResult, resolve

log = logging.getLogger(__name__)
INTERNAL_TYPES = {S.WORK_IMAGE: pa.binary(), S.BACKGROUND_STATUS: pa.string()}
# Model-load seconds (augment.core.models) on the first row of the batch after the load; every batch has the column,
# so that batches of one shard always concatenate. In the manifest: timings.model_load.
LOAD_TIMING = f"{S.TIMING_PREFIX}model_load"


@dataclasses.dataclass
class StageSpec:
    """What a worker needs to build one stage: names and validated options (picklable)."""

    name: str
    backend: str
    options: Any


def build_stage(spec: StageSpec, context: RunContext) -> Stage:
    return resolve(spec.name, spec.backend)(spec.options, context)


def read_shard(spec: dict[str, Any], input_schema: pa.Schema, column_map: dict[str, str]) -> pa.Table:
    """The rows of one shard with the bookkeeping columns every later step relies on."""
    start, stop = spec["row_start"], spec["row_stop"]
    target = pa.schema([f for f in input_schema if f.name != S.DUPLICATE])
    offset = spec.get("read_offset") or 0  # the source row of the read file's first row (a staged part)
    table = io.read_rows(spec["read_uri"], start - offset, stop - offset, target, column_map)
    if table.num_rows != stop - start:
        raise IOError(
            f"shard {spec['shard_id']}: expected rows {start}..{stop} of {spec['source_uri']}, read {table.num_rows}; "
            "has the input changed since the run was planned?"
        )
    n = table.num_rows
    duplicates = set(spec.get("duplicate_rows") or ())
    rows = list(range(start, stop))
    table = table.append_column(S.DUPLICATE, pa.array([r in duplicates for r in rows], pa.bool_()))
    extra = {
        S.SHARD_ID: pa.array([spec["shard_id"]] * n, pa.string()),
        S.SOURCE_URI: pa.array([spec["source_uri"]] * n, pa.string()),
        S.SOURCE_ROW: pa.array(rows, pa.int64()),
        S.QUARANTINE_REASON: pa.nulls(n, pa.string()),
        S.QUARANTINE_STAGE: pa.nulls(n, pa.string()),
        S.QUARANTINE_DETAIL: pa.nulls(n, pa.string()),
    }
    for name, column in extra.items():
        table = table.append_column(name, column)
    return table


def column_type(name: str) -> pa.DataType | None:
    if name in S.OUTPUT_FIELDS.names:
        return S.OUTPUT_FIELDS.field(name).type
    return INTERNAL_TYPES.get(name)


class StageChain:
    """A group of stages run back to back in one process (one Ray actor pool)."""

    def __init__(
        self,
        specs: list[StageSpec],
        context: RunContext,
        read: tuple[pa.Schema, dict[str, str]] | None = None,
    ):
        self.context = context
        self.read = read  # (input schema, column map) when this chain starts from shard specs
        self.stages = [build_stage(spec, context) for spec in specs]
        for stage in self.stages:
            stage.setup()
        self.load_seconds = models.take_load_seconds()  # what setup() loaded: charged to the first batch

    def __call__(self, table: pa.Table) -> pa.Table:
        if self.read is not None:
            schema, column_map = self.read
            tables = [read_shard(spec, schema, column_map) for spec in table.to_pylist()]
            table = pa.concat_tables(tables) if tables else table
        for stage in self.stages:
            faults.point(f"stage:{stage.name}")
            table = apply_stage(stage, table)
        return self._charge_loads(table)

    def _charge_loads(self, table: pa.Table) -> pa.Table:
        """Put the model-load seconds this process spent since the last batch on this batch's first row: one load
        shows on exactly one shard's record."""
        seconds = self.load_seconds + models.take_load_seconds()
        self.load_seconds = 0.0
        if LOAD_TIMING in table.column_names:  # set by an earlier chain of the same run
            values = table.column(LOAD_TIMING).to_pylist()
        else:
            values = [0.0] * table.num_rows
        if seconds and values:
            values[0] = (values[0] or 0.0) + seconds
        return _set_column(table, LOAD_TIMING, pa.array(values, pa.float64()))


def apply_stage(stage: Stage, table: pa.Table) -> pa.Table:
    """Run one stage over the live rows of `table` and merge its columns and rejections back."""
    with stage.batch_context():
        return _apply(stage, table)


def _apply(stage: Stage, table: pa.Table) -> pa.Table:
    reasons = table.column(S.QUARANTINE_REASON)
    live = pc.indices_nonzero(pc.is_null(reasons)).to_pylist()
    n = table.num_rows
    timing = [0.0] * n
    rejects: list[Rejection | None] = [None] * n
    if len(live) == n:  # the usual case: the stage's columns are the new columns as they are
        batch = {name: table.column(name).to_pylist() if name in table.column_names else [None] * n
                 for name in dict.fromkeys(("product_id",) + tuple(stage.reads))}
        started = time.perf_counter()
        result = _process_isolated(stage, batch, n)
        timing = [(time.perf_counter() - started) / n] * n
        outputs = {name: result.columns[name] for name in stage.writes}
        if result.rejects is not None:
            rejects = list(result.rejects)
    else:  # rows rejected earlier keep what they had
        outputs = {name: _existing(table, name, n) for name in stage.writes}
        if live:
            batch = {name: _take(table, name, live) for name in dict.fromkeys(("product_id",) + tuple(stage.reads))}
            started = time.perf_counter()
            result = _process_isolated(stage, batch, len(live))
            per_row = (time.perf_counter() - started) / len(live)
            for j, i in enumerate(live):
                timing[i] = per_row
                for name in stage.writes:
                    outputs[name][i] = result.columns[name][j]
                if result.rejects is not None and result.rejects[j] is not None:
                    rejects[i] = result.rejects[j]
    for name, values in outputs.items():
        table = _set_column(table, name, pa.array(values, type=column_type(name)))
    if any(r is not None for r in rejects):
        table = _mark_rejected(table, stage.name, rejects)
    return _set_column(table, f"{S.TIMING_PREFIX}{stage.name}", pa.array(timing, pa.float64()))


def _process_isolated(stage: Stage, batch: dict[str, list], n: int) -> StageResult:
    """stage.process over the batch; on an exception, row by row, quarantining only the rows that fail."""
    try:
        faults.point(f"stage_call:{stage.name}")
        return _checked(stage, stage.process(batch), n)
    except storage.StorageUnavailable:  # no bad row: the shard is left uncommitted, for the resume
        raise
    except Exception as exc:  # noqa: BLE001 - isolate the bad row, never end the run
        if n == 1:
            return _error_result(stage, exc)
        log.warning("stage %s failed on a batch of %d (%s: %s); retrying row by row", stage.name, n, type(exc).__name__, exc)
    columns: dict[str, list] = {name: [] for name in stage.writes}
    rejects: list[Rejection | None] = []
    for j in range(n):
        single = {name: [values[j]] for name, values in batch.items()}
        try:
            faults.point(f"stage_call:{stage.name}")
            result = _checked(stage, stage.process(single), 1)
        except storage.StorageUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001
            result = _error_result(stage, exc)
        for name in stage.writes:
            columns[name].append(result.columns[name][0])
        rejects.append(result.rejects[0] if result.rejects else None)
    return StageResult(columns, rejects)


def _error_result(stage: Stage, exc: Exception) -> StageResult:
    return StageResult({name: [None] for name in stage.writes}, [Rejection(*stage_error(stage.name, exc))])


def _checked(stage: Stage, result: StageResult, n: int) -> StageResult:
    for name in stage.writes:
        values = result.columns.get(name)
        if values is None or len(values) != n:
            raise RuntimeError(
                f"stage {stage.name}/{stage.backend} returned {None if values is None else len(values)} values "
                f"for column {name!r} on a batch of {n}"
            )
    if result.rejects is not None and len(result.rejects) != n:
        raise RuntimeError(f"stage {stage.name}/{stage.backend} returned {len(result.rejects)} rejections for {n} rows")
    return result


def _take(table: pa.Table, name: str, indices: list[int]) -> list:
    if name not in table.column_names:
        return [None] * len(indices)
    return table.column(name).take(indices).to_pylist()


def _existing(table: pa.Table, name: str, n: int) -> list:
    return table.column(name).to_pylist() if name in table.column_names else [None] * n


def _set_column(table: pa.Table, name: str, column: pa.Array) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, column)
    return table.append_column(name, column)


def _mark_rejected(table: pa.Table, stage_name: str, rejects: list[Rejection | None]) -> pa.Table:
    reason = table.column(S.QUARANTINE_REASON).to_pylist()
    where = table.column(S.QUARANTINE_STAGE).to_pylist()
    detail = table.column(S.QUARANTINE_DETAIL).to_pylist()
    for i, rejection in enumerate(rejects):
        if rejection is not None:
            reason[i], where[i], detail[i] = rejection.reason, stage_name, rejection.detail
    table = _set_column(table, S.QUARANTINE_REASON, pa.array(reason, pa.string()))
    table = _set_column(table, S.QUARANTINE_STAGE, pa.array(where, pa.string()))
    return _set_column(table, S.QUARANTINE_DETAIL, pa.array(detail, pa.string()))

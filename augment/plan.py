"""Planning a run: which shards exist, which are already committed, and whether the output may be resumed.

A shard is a row range of one input file; its id is a hash of (source URI, row range), so the same input and
shard size always give the same shards, and a rerun knows what it has done. The run folder's `_run.json` records
the config hash and the input's fingerprint; resuming into a folder made with another config or another input
is refused (RunMismatch) unless `force`, which clears the previous outputs first.

No Ray here: Airflow's plan task calls `plan_run` directly.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from augment import io
from augment.core import manifest, storage
from augment.core import schema as S
from augment.config import Config, stage_options
from augment.core.util import code_version, stable_hash

log = logging.getLogger(__name__)
INPUT_WORK_DIR = "_input"
ARTIFACT_DIR = "_artifacts"


class RunMismatch(RuntimeError):
    """The output folder holds a run made with another config or input."""


@dataclasses.dataclass
class ShardSpec:
    shard_id: str
    source_uri: str
    read_uri: str
    row_start: int
    row_stop: int
    duplicate_rows: list[int] = dataclasses.field(default_factory=list)  # source rows whose product_id came earlier

    @property
    def num_rows(self) -> int:
        return self.row_stop - self.row_start

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Plan:
    run_uri: str
    run_id: str
    config_hash: str
    input_uri: str
    sources: list[io.Source]
    shards: list[ShardSpec]
    committed: dict[str, manifest.ShardRecord]
    input_schema: pa.Schema  # what read_shard produces, bookkeeping included
    artifacts: dict[str, str]
    limit: int | None = None

    @property
    def pending(self) -> list[ShardSpec]:
        return [s for s in self.shards if s.shard_id not in self.committed]

    @property
    def rows_total(self) -> int:
        return sum(s.num_rows for s in self.shards)

    @property
    def rows_pending(self) -> int:
        return sum(s.num_rows for s in self.pending)

    def restrict(self, shard_ids: list[str]) -> "Plan":
        """The same plan limited to `shard_ids` (an Airflow task's batch); unknown ids are an error."""
        known = {s.shard_id for s in self.shards}
        missing = [i for i in shard_ids if i not in known]
        if missing:
            raise ValueError(f"unknown shard ids for this input and config: {', '.join(missing[:5])}")
        wanted = set(shard_ids)
        return dataclasses.replace(self, shards=[s for s in self.shards if s.shard_id in wanted])

    def summary(self) -> dict[str, Any]:
        return {
            "run_uri": self.run_uri,
            "run_id": self.run_id,
            "config_hash": self.config_hash,
            "sources": [s.uri for s in self.sources],
            "rows": self.rows_total,
            "shards": len(self.shards),
            "committed": len([s for s in self.shards if s.shard_id in self.committed]),
            "pending": [s.shard_id for s in self.pending],
            "rows_pending": self.rows_pending,
            "renamed_columns": self.renamed_columns,
            "not_carried_columns": sorted({n for s in self.sources for n in s.not_carried}),
        }

    @property
    def renamed_columns(self) -> dict[str, str]:
        """Input columns carried under another name, because the pipeline writes their name itself."""
        return {k: v for source in self.sources for k, v in source.renamed.items()}


def shard_id(source_uri: str, start: int, stop: int) -> str:
    return stable_hash(source_uri, start, stop, length=16)


def default_output_uri() -> str:
    return str(storage.join("runs", time.strftime("%Y%m%d-%H%M%S") + f"-{uuid.uuid4().hex[:4]}"))


def plan_run(
    input_uri: str,
    output_uri: str,
    config: Config,
    limit: int | None = None,
    force: bool = False,
    write: bool = True,
    work_uri: str | None = None,
) -> Plan:
    """Plan (and unless `write` is false, initialise) the run of `input_uri` into `output_uri`. Inputs that need
    staging are staged under `work_uri` (default: the run's `_input/`; a dry run passes a scratch folder)."""
    shard_size = config.run.shard_size
    column_map = dict(config.input.columns)
    work_uri = work_uri or storage.join(output_uri, INPUT_WORK_DIR)
    # 1. The input files and the run folder's identity: resume only what this config and input made.
    files = io.discover(input_uri)
    identity = {
        "config_hash": config.hash(),
        "inputs": [io.fingerprint(uri) for uri in files],
        "limit": limit,
        "shard_size": shard_size,
        "schema_version": S.SCHEMA_VERSION,
    }
    run_id = _check_identity(output_uri, identity, force, write)
    # 2. The input staged where needed, so that a shard read is one cheap row-range read.
    sources = [io.open_source(uri, work_uri, column_map, shard_size) for uri in files]
    input_schema = _unify(sources)
    carried = pa.schema([f for f in input_schema if not f.name.startswith("_")])
    try:  # what the shards will hold; a clash is an error now, not a failed write after the stages ran
        S.output_schema(carried), S.quarantine_schema(carried)
    except ValueError as exc:
        raise io.InputError(str(exc)) from None
    # 3. The rows this run covers (--limit counts across files in order).
    budget = limit
    counts = []
    for source in sources:
        n = source.num_rows if budget is None else min(source.num_rows, budget)
        counts.append(n)
        if budget is not None:
            budget -= n
    # 4. Shards: row ranges of shard_size within each file; duplicates of an earlier product_id are marked.
    duplicates = _duplicate_rows(sources, counts, column_map)
    shards = []
    for source, n in zip(sources, counts):
        for start in range(0, n, shard_size):
            stop = min(start + shard_size, n)
            dups = [r for r in duplicates.get(source.uri, []) if start <= r < stop]
            shards.append(ShardSpec(shard_id(source.uri, start, stop), source.uri, source.read_uri, start, stop, dups))
    committed = manifest.load(output_uri) if storage.exists(output_uri) else {}
    stale = [r.shard_id for r in committed.values() if r.config_hash != identity["config_hash"]]
    if stale and not force:
        raise RunMismatch(f"{len(stale)} committed shards in {output_uri} were made with another config; use --force")
    # 5. Artifacts derived from the whole input before any stage runs.
    wanted = wanted_artifacts(config) if write else set()
    artifacts = _learned_brands(sources, counts, column_map, output_uri) if "learned_brands" in wanted else {}
    return Plan(
        run_uri=output_uri, run_id=run_id, config_hash=identity["config_hash"], input_uri=input_uri,
        sources=sources, shards=shards, committed=committed, input_schema=input_schema,
        artifacts=artifacts, limit=limit,
    )


def _unify(sources: list[io.Source]) -> pa.Schema:
    fields: dict[str, pa.Field] = {}
    for source in sources:
        for field in source.schema:
            if field.name in fields and fields[field.name].type != field.type:
                if field.name in S.INPUT_FIELDS.names:
                    continue  # contract columns are cast per file by io.conform
                raise io.InputError(
                    f"input files disagree on the type of column {field.name!r}: "
                    f"{fields[field.name].type} vs {field.type} in {source.uri}"
                )
            fields.setdefault(field.name, field)
    for name in S.INPUT_FIELDS.names:
        fields[name] = S.INPUT_FIELDS.field(name)
    fields[S.DUPLICATE] = pa.field(S.DUPLICATE, pa.bool_())
    return pa.schema(list(fields.values()))


def _duplicate_rows(sources: list[io.Source], counts: list[int], column_map: dict[str, str]) -> dict[str, list[int]]:
    """Rows whose product_id already occurred earlier in the input (first occurrence wins), by source."""
    chunks, owners = [], []
    for index, (source, n) in enumerate(zip(sources, counts)):
        ids = io.read_column(source, "product_id", column_map, limit=n) if n else None
        if ids is not None:
            chunks.extend(ids.chunks)
            owners.append((index, len(ids)))
    if not chunks:
        return {}
    all_ids = pa.chunked_array(chunks, pa.string())
    counted = pc.value_counts(all_ids)
    repeated = pc.filter(counted.field("values"), pc.greater(counted.field("counts"), 1))
    repeated = pc.drop_null(repeated)
    if len(repeated) == 0:
        return {}
    positions = pc.indices_nonzero(pc.is_in(all_ids, value_set=repeated)).to_numpy()
    starts = np.cumsum([0] + [n for _, n in owners])
    seen: set[str] = set()
    out: dict[str, list[int]] = {}
    for position, pid in zip(positions, all_ids.take(positions).to_pylist()):
        if pid in seen:
            k = int(np.searchsorted(starts, position, side="right") - 1)
            source_index = owners[k][0]
            out.setdefault(sources[source_index].uri, []).append(int(position - starts[k]))
        else:
            seen.add(pid)
    return out


def _check_identity(output_uri: str, identity: dict[str, Any], force: bool, write: bool) -> str:
    run_file = storage.join(output_uri, manifest.RUN_FILE)
    if storage.exists(run_file):
        previous = json.loads(storage.read_text(run_file))
        changed = [k for k in identity if previous.get(k) != identity[k]]
        if not changed:
            return previous["run_id"]
        if not force:
            raise RunMismatch(
                f"{output_uri} holds a run made with a different {' and '.join(_explain(k) for k in changed)}; "
                "resume with the same config and input, choose another --output, or pass --force to redo it"
            )
        if write:
            clear_outputs(output_uri)
    elif storage.exists(storage.join(output_uri, manifest.MANIFEST)) and not force:
        raise RunMismatch(f"{output_uri} has a manifest but no {manifest.RUN_FILE}; pass --force to start over")
    run_id = time.strftime("run-%Y%m%dT%H%M%S") + f"-{uuid.uuid4().hex[:6]}"
    if write:
        record = dict(identity, run_id=run_id, created_at=time.time(), code_version=code_version())
        storage.write_atomic(run_file, json.dumps(record, indent=1, sort_keys=True).encode())
    return run_id


def _explain(key: str) -> str:
    names = {"config_hash": "config", "inputs": "input", "limit": "--limit", "shard_size": "shard size",
             "schema_version": "schema version"}
    return names.get(key, key)


def clear_outputs(output_uri: str) -> None:
    """Remove what a previous run wrote (shards, quarantine, manifest, report); keeps the response cache."""
    log.warning("--force: removing the previous outputs of %s", output_uri)
    for name in (manifest.DATA_DIR, manifest.QUARANTINE_DIR, manifest.MANIFEST_DIR, manifest.REPORT_DIR, ARTIFACT_DIR, "images"):
        storage.delete_dir(storage.join(output_uri, name))
    for name in (manifest.MANIFEST, manifest.RUN_FILE):
        storage.delete(storage.join(output_uri, name))


def wanted_artifacts(config: Config) -> set[str]:
    """The run artifacts the enabled stages read with their options (Stage.artifacts)."""
    from augment.stages import resolve

    wanted: set[str] = set()
    for name, stage in config.enabled_stages():
        if name != "validate":  # its options come from input:, and it reads no artifact
            cls = resolve(name, stage.backend)
            wanted.update(cls.artifacts(stage_options(cls, stage.options, f"stages.{name}.options")))
    return wanted


def _learned_brands(sources, counts, column_map, output_uri: str) -> dict[str, str]:
    """The input's distinct catalogue brands as a lexicon file for the NER stage."""
    brands: set[str] = set()
    for source, n in zip(sources, counts):
        column = io.read_column(source, "catalog_brand", column_map, limit=n)
        if column is not None:
            brands.update(b.strip() for b in column.to_pylist() if b and b.strip())
    if not brands:
        return {}
    uri = storage.join(output_uri, ARTIFACT_DIR, "learned_brands.txt")
    storage.write_atomic(uri, ("\n".join(sorted(brands)) + "\n").encode())
    return {"learned_brands": uri}

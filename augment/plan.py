"""Planning a run: which shards exist, which are already committed, and whether the output may be resumed.

A shard is a row range of one input file; its id is a hash of (source URI, row range), so the same input and
shard size always give the same shards, and a rerun knows what it has done. The run folder's `_run.json` records
the config hash, the input's fingerprint and the digests of the files the options name (lexicons: `option_files`);
resuming into a folder made with another config, input or such file is refused (RunMismatch) unless `force`,
which clears the previous outputs first.

The plan is made once and saved in the run folder (`_plan/`, see `save`): `plan.json` (format version, the run's
identity, its sources, schema and artifacts, the shard count and the batch layout) and `shards.parquet` (one row
per shard in catalogue order: id, source, row range, duplicate rows; row groups of `SHARD_GROUP` shards). A job
of one batch (`load_batch`) reads the header and the row groups of its own shards, and the commit records of
those shards only: its cost does not grow with the catalogue. It refuses the saved plan (PlanMismatch) when the
input or the config differ from the ones it was made with. Batch `b` of `n` shards per batch is the shards
`[b * n, (b + 1) * n)` of the table: any layout can be asked of the same saved plan.

No Ray here: Airflow's plan task calls `plan_run` directly.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
import uuid
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from augment import io
from augment.core import manifest, storage
from augment.core import schema as S
from augment.config import Config, stage_options
from augment.core.names import PLAN_DEFAULT_BATCHES
from augment.core.util import code_version, file_digest, stable_hash

log = logging.getLogger(__name__)
INPUT_WORK_DIR = "_input"
ARTIFACT_DIR = "_artifacts"
PLAN_DIR = "_plan"
PLAN_FILE = "plan.json"  # the header; written last, so a present header means a complete plan
SHARD_TABLE = "shards.parquet"
PLAN_FORMAT = "moon.plan/1"
SHARD_GROUP = 1024  # shards per row group of the shard table: a batch reads at most its own shards + 2 groups
DEFAULT_BATCHES = PLAN_DEFAULT_BATCHES  # the batch layout a plan records when nobody asks for another


# What a run's identity keys are called in `moon run`'s messages, and what the user can do about a mismatch. Another
# front end (the Airflow form: orchestrate/tasks.py) has its own words for the same keys.
FIELD_NAMES = {"config_hash": "config", "inputs": "input", "limit": "--limit", "shard_size": "shard size",
               "schema_version": "schema version", "option_files": "file named by the stage options"}
# Identity keys that later versions added, with the value that a record made before them stands for: such a record is
# compared as if it held that value.
ADDED_KEYS: dict[str, Any] = {"option_files": {}}
REMEDIES = {
    "force": "pass --force to start the run over",
    "resume": "resume with the same config and input, choose another --output, or pass --force to redo it",
    "planned_input": "use that input, or another --output for this one",
    "replan": "run the job with the plan's config and input, or plan the run again (moon run --plan-only --force, "
              "or another --output)",
    "outside": "choose an --output outside it",
}
CHANGED = "{changed}"  # where a reason names the identity keys that differ


class RunMismatch(RuntimeError):
    """The output folder holds a run made with another config or input, or a record of it that cannot be read.

    `str()` is `moon run`'s message. The reason, the identity keys that differ (`changed`) and what the user can do
    (`remedy`, a key of REMEDIES) are kept apart, so that another front end words the same refusal with `words()`."""

    def __init__(self, reason: str, remedy: str | None = None, changed: tuple[str, ...] | list[str] = ()):
        self.reason, self.remedy, self.changed = reason, remedy, tuple(changed)
        super().__init__(self.words(FIELD_NAMES, REMEDIES))

    def words(self, names: dict[str, str], remedies: dict[str, str]) -> str:
        """The message in a front end's words: `names` of identity keys, `remedies` by key."""
        reason = self.reason.replace(CHANGED, " and ".join(names.get(k, k) for k in self.changed))
        return f"{reason}; {remedies[self.remedy]}" if self.remedy else reason


class PlanMismatch(RunMismatch):
    """The saved plan was made from another input, config, --limit or shard size than this job's."""


class NoSavedPlan(FileNotFoundError):
    """The run folder has no saved plan (`_plan/plan.json`)."""


@dataclasses.dataclass
class ShardSpec:
    shard_id: str
    source_uri: str
    read_uri: str
    row_start: int
    row_stop: int
    duplicate_rows: list[int] = dataclasses.field(default_factory=list)  # source rows whose product_id came earlier
    read_offset: int = 0  # the source row of read_uri's first row (read_uri is a staged part of the source)

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
    # What the plan covers: the whole run, one batch of the saved plan (`load_batch`), or shards picked by id.
    scope: str = "run"
    total_shards: int | None = None  # shards of the whole run (self.shards holds only a batch's)
    batch: int | None = None
    shards_per_batch: int | None = None

    @property
    def batches(self) -> int:
        """Batches of the run in the plan's layout."""
        total = len(self.shards) if self.total_shards is None else self.total_shards
        return math.ceil(total / self.shards_per_batch) if self.shards_per_batch else 1

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
        return dataclasses.replace(self, shards=[s for s in self.shards if s.shard_id in wanted], scope="shards",
                                   total_shards=len(self.shards) if self.total_shards is None else self.total_shards)

    def summary(self) -> dict[str, Any]:
        out = {
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
            "scope": self.scope,
        }
        if self.scope != "run":
            out["run_shards"] = self.total_shards
        if self.shards_per_batch:
            out |= {"batches": self.batches, "shards_per_batch": self.shards_per_batch}
        if self.scope == "batch":
            out["batch"] = self.batch
        return out

    @property
    def renamed_columns(self) -> dict[str, str]:
        """Input columns carried under another name, because the pipeline writes their name itself."""
        return {k: v for source in self.sources for k, v in source.renamed.items()}


def shard_id(source_uri: str, start: int, stop: int) -> str:
    return stable_hash(source_uri, start, stop, length=16)


def _shard_ids(source_uri: str, starts: list[int], stops: list[int]) -> list[str]:
    """`shard_id` of many row ranges of one source: the same bytes hashed (stable_hash's compact JSON of
    [uri, start, stop]), without a json.dumps per shard."""
    prefix = "[" + json.dumps(source_uri) + ","
    return [hashlib.sha256(f"{prefix}{a},{b}]".encode()).hexdigest()[:16] for a, b in zip(starts, stops)]


def batch_layout(total_shards: int, max_batches: int = DEFAULT_BATCHES, shards_per_batch: int | None = None) -> int:
    """Shards per batch: `shards_per_batch` when given and it makes at most `max_batches` batches, else the
    smallest number that does."""
    if max_batches < 1:
        raise ValueError(f"max_batches must be at least 1, got {max_batches}")
    least = max(1, math.ceil(total_shards / max_batches))
    return max(least, shards_per_batch or 1)


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
    shards_per_batch: int | None = None,
    max_batches: int | None = None,
    verify: bool = False,
) -> Plan:
    """Plan (and unless `write` is false, initialise) the run of `input_uri` into `output_uri`. Inputs that need
    staging are staged under `work_uri` (default: the run's `_input/`; a dry run passes a scratch folder).

    A written plan is saved in the run folder (`_plan/`) with the batch layout `batch_layout(shards, max_batches,
    shards_per_batch)` (neither given: the saved layout, else `DEFAULT_BATCHES` batches at most); a later call
    with the same input and config reads it back instead of planning again. Committed shards whose files are
    gone or changed size are redone; with `verify`, also those whose bytes no longer match their checksum."""
    work_uri = work_uri or storage.join(output_uri, INPUT_WORK_DIR)
    if storage.holds(output_uri, input_uri):
        raise io.InputError(f"the run folder {output_uri} holds the input {input_uri}: a run folder's files are never "
                            "read as input, so no later run could read it; choose another output folder")
    enclosing = manifest.enclosing_run(output_uri)
    if enclosing is not None:
        raise RunMismatch(f"{output_uri} lies inside the run folder {enclosing}, whose readers (its data/ read as a "
                          "dataset, its report) would take this run's files for its own", "outside")
    # 1. The input files and the run folder's identity: resume only what this config and input made.
    found = io.inputs(input_uri)
    files = [f["uri"] for f in found]
    identity = _identity(config, found, limit)
    run_id = _check_identity(output_uri, identity, force, write)
    saved = _saved_header(output_uri, identity)
    plan = None
    if saved is not None:
        try:
            plan = _plan_from_saved(output_uri, saved)
            plan.run_id = run_id
        except (OSError, pa.ArrowInvalid) as exc:  # its shard table cut short or overwritten: planned again
            log.warning("the saved plan's shard table of %s cannot be read (%s): planning again", output_uri,
                        " ".join(str(exc).split()))
            saved = None
    if plan is None:
        plan = _make_plan(input_uri, output_uri, config, files, limit, work_uri, write, run_id, identity)
    if saved is not None and shards_per_batch is None and max_batches is None and saved.get("shards_per_batch"):
        plan.shards_per_batch = saved["shards_per_batch"]
    else:
        plan.shards_per_batch = batch_layout(len(plan.shards), max_batches or DEFAULT_BATCHES, shards_per_batch)
    if write and (saved is None or saved.get("shards_per_batch") != plan.shards_per_batch):
        save(plan, identity, write_table=saved is None)
    plan.committed = manifest.load(output_uri) if storage.exists(output_uri) else {}
    stale = [r.shard_id for r in plan.committed.values() if r.config_hash != identity["config_hash"]]
    if stale and not force:
        raise RunMismatch(f"{len(stale)} committed shards in {output_uri} were made with another config", "force")
    _redo_lost(plan, verify)
    return plan


def _redo_lost(plan: Plan, verify: bool = False) -> None:
    """Committed shards whose data or quarantine file was deleted since (by hand, a lifecycle rule), or changed
    size (overwritten, cut short), or with `verify` changed bytes, are pending again: the run redoes them instead
    of counting rows it no longer holds."""
    lost = manifest.lost_files(plan.run_uri, plan.committed.values(), verify) if plan.committed else {}
    if lost:
        log.warning("%d committed shards of %s lost or changed their files (e.g. %s): they are redone", len(lost),
                    plan.run_uri, next(iter(lost.values())))
        manifest.mark_redone(plan.run_uri, lost)
        for shard_id in lost:
            del plan.committed[shard_id]


def _identity(config: Config, inputs: list[dict[str, Any]], limit: int | None) -> dict[str, Any]:
    """What a plan is of: the config, the input files' fingerprints (io.inputs), the row limit and shard size, and
    the contents of the files the options name (option_files)."""
    return {
        "config_hash": config.hash(),
        "inputs": inputs,
        "limit": limit,
        "shard_size": config.run.shard_size,
        "schema_version": S.SCHEMA_VERSION,
        "option_files": option_files(config),
    }


def option_files(config: Config) -> dict[str, str]:
    """The sha256 digest of each file the enabled stages' options name (Stage.option_files), by its dotted key
    (`stages.ner.options.lexicons[0]`). The config hash covers the names; these, what the files hold."""
    digests = {}
    for name, cls, options in _enabled_stages(config):
        for option, path in cls.option_files(options).items():
            digests[f"stages.{name}.options.{option}"] = file_digest(path)
    return digests


def _changed(before: dict[str, Any], identity: dict[str, Any]) -> list[str]:
    """The identity keys whose values differ from a recorded identity's (one recorded before a key of ADDED_KEYS
    existed stands for that key's value there)."""
    return [k for k in identity if before.get(k, ADDED_KEYS.get(k)) != identity[k]]


def _option_change(before: dict[str, Any], identity: dict[str, Any]) -> str:
    """` (stages.ner.options.lexicons[0] changed)`: which files the options name changed, for the error message."""
    old, new = before.get("option_files", ADDED_KEYS["option_files"]), identity["option_files"]
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return f" ({', '.join(keys)} changed)" if keys else ""


def _make_plan(input_uri, output_uri, config, files, limit, work_uri, write, run_id, identity) -> Plan:
    shard_size = config.run.shard_size
    column_map = dict(config.input.columns)
    # 2. The input staged where needed, so that a shard read is one cheap row-range read.
    sources = [io.open_source(uri, work_uri, column_map, shard_size) for uri in files]
    io.check_mapped(sources, column_map, input_uri)  # a mapped column no file has is a mistake, not a no-op
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
    if not sum(counts):
        where = files[0] if len(files) == 1 else f"{input_uri} (its {len(files)} files have no rows)"
        raise io.InputError(f"{where} holds no products: there is nothing to run")
    # 4. Shards: row ranges of shard_size within each file; duplicates of an earlier product_id are marked.
    duplicates = _duplicate_rows(sources, counts, column_map)
    shards = []
    for source, n in zip(sources, counts):
        starts = list(range(0, n, shard_size))
        stops = [min(start + shard_size, n) for start in starts]
        dups = duplicates.get(source.uri, [])
        cuts = np.searchsorted(np.asarray(dups, dtype=np.int64), np.asarray(starts + [n], dtype=np.int64))
        for k, (sid, start, stop) in enumerate(zip(_shard_ids(source.uri, starts, stops), starts, stops)):
            read_uri, offset = source.locate(start)
            shards.append(ShardSpec(sid, source.uri, read_uri, start, stop, dups[cuts[k]:cuts[k + 1]], offset))
    # 5. Artifacts derived from the whole input before any stage runs.
    wanted = wanted_artifacts(config) if write else set()
    artifacts = _learned_brands(sources, counts, column_map, output_uri) if "learned_brands" in wanted else {}
    return Plan(
        run_uri=output_uri, run_id=run_id, config_hash=identity["config_hash"], input_uri=input_uri,
        sources=sources, shards=shards, committed={}, input_schema=input_schema, artifacts=artifacts, limit=limit,
    )


# ---------------------------------------------------------------------------------------------------------------
# The saved plan
# ---------------------------------------------------------------------------------------------------------------
def plan_uri(run_uri: str, name: str = PLAN_FILE) -> str:
    return storage.join(run_uri, PLAN_DIR, name)


def save(plan: Plan, identity: dict[str, Any], write_table: bool = True) -> None:
    """Write `_plan/shards.parquet` (unless only the layout changed), then the header `_plan/plan.json`."""
    if write_table:
        index = {source.uri: i for i, source in enumerate(plan.sources)}
        table = pa.table({
            "shard_id": pa.array([s.shard_id for s in plan.shards], pa.string()),
            "source": pa.array([index[s.source_uri] for s in plan.shards], pa.int32()),
            "row_start": pa.array([s.row_start for s in plan.shards], pa.int64()),
            "row_stop": pa.array([s.row_stop for s in plan.shards], pa.int64()),
            "duplicate_rows": pa.array([s.duplicate_rows for s in plan.shards], pa.list_(pa.int64())),
        })
        with storage.publishing(plan_uri(plan.run_uri, SHARD_TABLE)) as tmp:
            pq.write_table(table, tmp, row_group_size=SHARD_GROUP, compression="zstd")
    header = {
        "format": PLAN_FORMAT,
        "run_id": plan.run_id,
        "identity": identity,
        "input_uri": plan.input_uri,
        "sources": [source.to_dict() for source in plan.sources],
        "input_schema": io.schema_to_text(plan.input_schema),
        "artifacts": plan.artifacts,
        "shards": len(plan.shards),
        "rows": plan.rows_total,
        "shards_per_batch": plan.shards_per_batch,
        "batches": plan.batches,
        "created_at": time.time(),
        "code_version": code_version(),
    }
    storage.write_atomic(plan_uri(plan.run_uri), json.dumps(header, indent=1, sort_keys=True).encode())


REPLAN = "plan the run again (moon run --plan-only with the same --output; committed shards are kept)"


def read_header(run_uri: str) -> dict[str, Any]:
    """The saved plan's header; NoSavedPlan if the folder has none, ValueError if it is of another format."""
    uri = plan_uri(run_uri)
    try:
        header = json.loads(storage.read_text(uri))
    except FileNotFoundError:
        raise NoSavedPlan(f"{run_uri} has no saved plan ({PLAN_DIR}/{PLAN_FILE}): plan the run first "
                          "(moon run --plan-only, or the DAG's plan task)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{uri}: not a readable saved plan ({exc}); {REPLAN}") from None
    if not isinstance(header, dict):
        raise ValueError(f"{uri}: not a readable saved plan (a JSON {type(header).__name__}); {REPLAN}")
    if header.get("format") != PLAN_FORMAT:
        raise ValueError(f"{uri}: a plan of format {header.get('format')!r}, this moon reads {PLAN_FORMAT!r}; "
                         "plan the run again into a new --output")
    return header


def _saved_header(run_uri: str, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The saved plan of this identity, if the folder holds a complete one whose staged inputs are still there."""
    try:
        header = read_header(run_uri)
    except (NoSavedPlan, ValueError, OSError):
        return None
    if _changed(header["identity"], identity) or not storage.exists(plan_uri(run_uri, SHARD_TABLE)):
        return None
    for source in header["sources"]:
        if source.get("part_rows") and not storage.exists(storage.join(source["read_uri"], io.STAGED_MARKER)):
            return None
    if any(not storage.exists(uri) for uri in header["artifacts"].values()):
        return None
    return header


def _plan_from_saved(run_uri: str, header: dict[str, Any], table: pa.Table | None = None) -> Plan:
    """The plan of a saved header with the shards of `table` (rows of the shard table; default all of them)."""
    sources = [io.Source.from_dict(s) for s in header["sources"]]
    if table is None:
        table = pq.read_table(plan_uri(run_uri, SHARD_TABLE))
    columns = {name: table.column(name).to_pylist() for name in table.column_names}
    shards = []
    for sid, k, start, stop, dups in zip(columns["shard_id"], columns["source"], columns["row_start"],
                                         columns["row_stop"], columns["duplicate_rows"]):
        source = sources[k]
        read_uri, offset = source.locate(start)
        shards.append(ShardSpec(sid, source.uri, read_uri, start, stop, dups or [], offset))
    return Plan(
        run_uri=run_uri, run_id=header["run_id"], config_hash=header["identity"]["config_hash"],
        input_uri=header["input_uri"], sources=sources, shards=shards, committed={},
        input_schema=io.schema_from_text(header["input_schema"]), artifacts=dict(header["artifacts"]),
        limit=header["identity"]["limit"], total_shards=header["shards"],
        shards_per_batch=header.get("shards_per_batch"),
    )


def load_batch(
    run_uri: str,
    config: Config,
    input_uri: str | None = None,
    limit: int | None = None,
    batch: int | None = None,
    shards_per_batch: int | None = None,
    shard_ids: list[str] | None = None,
    verify: bool = False,
) -> Plan:
    """One job's part of the saved plan: batch `batch` (of `shards_per_batch` shards; default: the saved layout),
    or the shards `shard_ids`, with the commit records of those shards only.

    Reads the header, the shard table's row groups that hold these shards (for `shard_ids`, also the table's id
    column, to find them: a few MB at 156k shards), and the commit records of these shards: the cost is the
    job's, not the catalogue's. Refuses (PlanMismatch, one line) a plan made from another input (its
    files' size or modification time differ), config, --limit or shard size."""
    header = read_header(run_uri)
    input_uri = input_uri or header["input_uri"]
    if input_uri != header["input_uri"]:
        raise PlanMismatch(f"{run_uri} was planned for the input {header['input_uri']}, not {input_uri}",
                           "planned_input")
    identity = _identity(config, io.inputs(input_uri), limit)
    changed = _changed(header["identity"], identity)
    if changed:
        raise PlanMismatch(f"the saved plan of {run_uri} was made with a different {CHANGED}"
                           f"{_input_change(header, identity)}{_option_change(header['identity'], identity)}",
                           "replan", changed)
    table_uri = plan_uri(run_uri, SHARD_TABLE)
    fs, path = storage.filesystem(table_uri)
    try:
        pf = pq.ParquetFile(fs.open_input_file(path))
    except (OSError, pa.ArrowInvalid) as exc:  # deleted, cut short, overwritten
        raise ValueError(f"{table_uri}: the saved plan's shard table cannot be read "
                         f"({' '.join(str(exc).split())}); {REPLAN}") from None
    total = header["shards"]
    if shard_ids is not None:
        ids = pf.read(columns=["shard_id"]).column(0).to_pylist()
        where = {sid: i for i, sid in enumerate(ids)}
        missing = [i for i in shard_ids if i not in where]
        if missing:
            raise ValueError(f"unknown shard ids for this input and config: {', '.join(missing[:5])}")
        indices = sorted(where[i] for i in set(shard_ids))
        scope, spb = "shards", header.get("shards_per_batch")
    else:
        spb = shards_per_batch or header.get("shards_per_batch") or total
        if spb < 1:
            raise ValueError(f"--shards-per-batch must be at least 1, got {spb}")
        batches = math.ceil(total / spb)
        if batch is None or not 0 <= batch < batches:
            raise ValueError(f"batch {batch}: the plan of {run_uri} has batches 0 to {batches - 1} "
                             f"({total} shards, {spb} per batch)")
        indices = list(range(batch * spb, min(total, (batch + 1) * spb)))
        scope = "batch"
    groups = sorted({i // SHARD_GROUP for i in indices})
    table = pf.read_row_groups(groups) if groups else pf.schema_arrow.empty_table()
    first = {g: n * SHARD_GROUP for n, g in enumerate(groups)}  # table row of each group's first shard
    table = table.take(pa.array([first[i // SHARD_GROUP] + i % SHARD_GROUP for i in indices], pa.int64()))
    plan = _plan_from_saved(run_uri, header, table)
    plan.scope, plan.batch, plan.shards_per_batch = scope, (batch if scope == "batch" else None), spb
    plan.committed = manifest.committed(run_uri, [s.shard_id for s in plan.shards])
    stale = [r.shard_id for r in plan.committed.values() if r.config_hash != plan.config_hash]
    if stale:
        raise RunMismatch(f"{len(stale)} committed shards of this batch in {run_uri} were made with another config")
    _redo_lost(plan, verify)
    return plan


def planned_shard_ids(run_uri: str) -> list[str]:
    """Every shard id of the saved plan, in catalogue order (one column of the shard table)."""
    read_header(run_uri)
    fs, path = storage.filesystem(plan_uri(run_uri, SHARD_TABLE))
    return pq.read_table(path, filesystem=fs, columns=["shard_id"]).column(0).to_pylist()


def _input_change(header: dict[str, Any], identity: dict[str, Any]) -> str:
    """` (x.parquet: size 10 -> 12)`: which input file changed, for the error message."""
    before = {f["uri"]: f for f in header["identity"]["inputs"]}
    now = {f["uri"]: f for f in identity["inputs"]}
    for uri in sorted(set(before) | set(now)):
        a, b = before.get(uri), now.get(uri)
        if a is None or b is None:
            return f" ({uri} {'is new' if a is None else 'is gone'})"
        diff = [f"{k} {a.get(k)} -> {b.get(k)}" for k in ("size", "mtime") if a.get(k) != b.get(k)]
        if diff:
            return f" ({uri}: {', '.join(diff)})"
    return ""


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
    """Rows whose product_id already occurred earlier in the input (first occurrence wins), by source.

    A stable sort of every id puts each repeated id's rows next to each other in input order: every row equal to
    the one before it in that order is a later duplicate. At 5M ids this takes 2 s and 60 MB, where hashing them
    (value counts, a dictionary) took 9 s and 750 MB."""
    chunks, owners = [], []
    for index, (source, n) in enumerate(zip(sources, counts)):
        ids = io.read_column(source, "product_id", column_map, limit=n) if n else None
        if ids is not None:
            chunks.extend(ids.chunks)
            owners.append((index, len(ids)))
    if not chunks:
        return {}
    ids = pa.chunked_array(chunks, pa.string()).combine_chunks()
    del chunks
    order = pc.array_sort_indices(ids, null_placement="at_end")  # stable: equal ids keep their input order
    ordered = ids.take(order)
    del ids
    same = pc.fill_null(pc.equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1)), False)  # nulls never repeat
    later = np.sort(order.to_numpy()[np.flatnonzero(same.to_numpy(zero_copy_only=False)) + 1])
    if len(later) == 0:
        return {}
    starts = np.cumsum([0] + [n for _, n in owners])
    out: dict[str, list[int]] = {}
    for k, (source_index, _) in enumerate(owners):
        rows = later[(later >= starts[k]) & (later < starts[k + 1])] - starts[k]
        if len(rows):
            out[sources[source_index].uri] = rows.tolist()
    return out


def _check_identity(output_uri: str, identity: dict[str, Any], force: bool, write: bool) -> str:
    run_file = storage.join(output_uri, manifest.RUN_FILE)
    try:  # only a record that cannot be parsed is the corrupt run --force redoes; a URI that cannot be reached
        previous = manifest.read_run_file(output_uri)  # fails in its own words
        expected = [k for k in [*identity, "run_id"] if k not in ADDED_KEYS]
        lacking = [k for k in expected if k not in previous] if previous is not None else []
        if lacking:  # edited by hand: not "a different config"
            raise manifest.RunRecordError(f"{run_file}: not a complete run record (no {', '.join(lacking)})")
    except manifest.RunRecordError as exc:
        if not force:
            raise RunMismatch(str(exc), "force") from None
        previous = {}  # redone: every identity key differs
    if previous is not None:
        changed = _changed(previous, identity)
        if not changed:
            return previous["run_id"]
        if not force:
            raise RunMismatch(f"{output_uri} holds a run made with a different {CHANGED}"
                              f"{_option_change(previous, identity)}", "resume", changed)
        if write:
            clear_outputs(output_uri)
    elif storage.exists(storage.join(output_uri, manifest.MANIFEST)) and not force:
        raise RunMismatch(f"{output_uri} has a manifest but no {manifest.RUN_FILE}", "force")
    run_id = time.strftime("run-%Y%m%dT%H%M%S") + f"-{uuid.uuid4().hex[:6]}"
    if write:
        record = dict(identity, run_id=run_id, created_at=time.time(), code_version=code_version())
        data = json.dumps(record, indent=1, sort_keys=True).encode()
        if previous is not None:  # --force over another run's record
            storage.write_atomic(run_file, data)
        elif not storage.create_exclusive(run_file, data):
            # Another invocation made the run at this moment (two jobs started on one new folder): its run it is,
            # when it is the same run; two run ids in one folder left records and files that disagreed.
            return _check_identity(output_uri, identity, force=False, write=False)
    return run_id


def clear_outputs(output_uri: str) -> None:
    """Remove what a previous run wrote (shards, quarantine, manifest, report); keeps the response cache."""
    log.warning("--force: removing the previous outputs of %s", output_uri)
    for name in (manifest.DATA_DIR, manifest.QUARANTINE_DIR, manifest.MANIFEST_DIR, manifest.REPORT_DIR, ARTIFACT_DIR,
                 PLAN_DIR, "images"):
        storage.delete_dir(storage.join(output_uri, name))
    for name in (manifest.MANIFEST, manifest.RUN_FILE):
        storage.delete(storage.join(output_uri, name))


def wanted_artifacts(config: Config) -> set[str]:
    """The run artifacts the enabled stages read with their options (Stage.artifacts)."""
    wanted: set[str] = set()
    for _, cls, options in _enabled_stages(config):
        wanted.update(cls.artifacts(options))
    return wanted


def _enabled_stages(config: Config):
    """(name, backend class, options) of each enabled stage but `validate` (its options come from input:, and it
    reads no artifact and names no file)."""
    from augment.stages import resolve

    for name, stage in config.enabled_stages():
        if name != "validate":
            cls = resolve(name, stage.backend)
            yield name, cls, stage_options(cls, stage.options, f"stages.{name}.options")


MAX_BRAND_CHARS = 100  # a longer catalogue brand value is not learned as a brand


def _learned_brands(sources, counts, column_map, output_uri: str) -> dict[str, str]:
    """The input's distinct catalogue brands as a lexicon file for the NER stage: JSON lines of BRAND patterns, so
    that a brand is read as written (in a plain list, one that starts with `#` would be a comment)."""
    brands: set[str] = set()
    for source, n in zip(sources, counts):
        column = io.read_column(source, "catalog_brand", column_map, limit=n)
        if column is not None:  # distinct values first: a catalogue has millions of rows and few brands
            brands.update(" ".join(b.split()) for b in pc.unique(column).to_pylist() if b and b.strip())
    long = sorted(b for b in brands if len(b) > MAX_BRAND_CHARS)
    if long:  # a description or a page pasted into the column: no title holds it, and tokenising it takes minutes
        log.warning("%d catalogue brand values of over %d characters are not learned as brands (e.g. %r)", len(long),
                    MAX_BRAND_CHARS, long[0][:60] + "...")
        brands.difference_update(long)
    if not brands:
        return {}
    uri = storage.join(output_uri, ARTIFACT_DIR, "learned_brands.jsonl")
    lines = (json.dumps({"label": "BRAND", "pattern": brand}, ensure_ascii=False) for brand in sorted(brands))
    storage.write_atomic(uri, ("\n".join(lines) + "\n").encode())
    return {"learned_brands": uri}

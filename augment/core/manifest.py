"""The run folder's manifest: one record per committed shard, and the commit protocol around it.

A shard is committed when its manifest record exists, and only then:
1. the data shard (and its quarantine file, if any rows were rejected) is published atomically
   (`storage.write_file_atomic`): `data/<shard_id>.parquet`, `quarantine/<shard_id>.parquet`;
2. the record is appended to `_manifest.jsonl` (local: one O_APPEND write under the file's lock, fsynced), or on
   S3 written as its own object `_manifest.d/<shard_id>.json` (S3 cannot append), which `consolidate()` folds
   into `_manifest.jsonl` at the end of a run.
A crash between 1 and 2 leaves a data file with no record: the shard is processed again and the file replaced
by an identical one, never duplicated, because its name is the deterministic shard id.

Runs of 100,000s of shards are read without holding the manifest: `iter_records` streams it, `committed` looks
up the records of a few shards (one job's), and `consolidate` on S3 fetches only the records not yet folded in.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from augment.core import storage

log = logging.getLogger(__name__)

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
    # variants by status (ok / filtered / failed) and by `<kind>:<status>` (detail:failed)
    variant_status: dict[str, int] = dataclasses.field(default_factory=dict)
    # written rows by `enrichment.status` prefix: ok / rejected / fallback; {} in records written before it existed
    enrichment_status: dict[str, int] = dataclasses.field(default_factory=dict)
    # written rows by where a model backend's background prompts came from: ok, or fallback:<reason> (the curated
    # set); {} for the template backend, and in records written before it existed
    background_status: dict[str, int] = dataclasses.field(default_factory=dict)
    # the quarantine file's sha256 and size, beside a data file's (checksum, bytes); "" and 0 without a quarantine
    # file, and in records written before they were kept
    quarantine_checksum: str = ""
    quarantine_bytes: int = 0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ShardRecord":
        """The record of a parsed line; a TypeError for a field missing, and a RecordError for a field that is not
        of its type (a record edited by hand, or written by another tool)."""
        record = cls(**{k: v for k, v in data.items() if k in _RECORD_FIELDS})
        # its default is for a record being made: one read without it would be committed now, at every read
        problem = "committed_at is missing" if "committed_at" not in data else record._problem()
        if problem:
            raise RecordError(f"the record of shard {str(record.shard_id)[:80]!r}: {problem}")
        return record

    def _problem(self) -> str | None:
        """What makes this record unfit for the readers' sums and joins, in words; None when nothing does."""
        for name, types in _CHECKED_TYPES.items():
            value = getattr(self, name)
            if not isinstance(value, types) or isinstance(value, bool):
                words = "text" if types[0] is str else "a whole number"
                return (f"{name} must be {words}{' or null' if type(None) in types else ''}, "
                        f"got {str(value)[:80]!r}")
        for name in _COUNT_FIELDS:
            if getattr(self, name) < 0:
                return f"{name} must be 0 or more, got {getattr(self, name)}"
        for name, number in _TALLY_FIELDS.items():
            tally = getattr(self, name)
            if not isinstance(tally, dict) or not all(isinstance(v, number) and not isinstance(v, bool)
                                                      for v in tally.values()):
                words = "whole numbers" if number is int else "numbers"
                return f"{name} must be an object of {words} by name, got {json.dumps(tally, default=str)[:80]}"
        if not isinstance(self.committed_at, (int, float)) or isinstance(self.committed_at, bool):
            return f"committed_at must be a number (seconds since 1970), got {str(self.committed_at)[:80]!r}"
        if self.rows_in != self.rows_out + self.rows_quarantined:
            return (f"rows_in {self.rows_in} is not rows_out {self.rows_out} + rows_quarantined "
                    f"{self.rows_quarantined}")
        return None


_RECORD_FIELDS = frozenset(f.name for f in dataclasses.fields(ShardRecord))  # looked up once, not per record
# The fields readers sort, join and count by: the shard's place in its input, its files and its rows.
_CHECKED_TYPES = {"shard_id": (str,), "source_uri": (str,), "row_start": (int,), "row_stop": (int,),
                  "rows_in": (int,), "rows_out": (int,), "rows_quarantined": (int,), "data_file": (str, type(None)),
                  "quarantine_file": (str, type(None)), "bytes": (int,), "quarantine_checksum": (str,),
                  "quarantine_bytes": (int,)}
_COUNT_FIELDS = tuple(name for name, types in _CHECKED_TYPES.items() if types == (int,))  # 0 or more
# What the report and `totals` sum, by the type of their values: counts by reason or status, seconds by stage.
_TALLY_FIELDS = {"quarantine_reasons": int, "timings": (int, float), "variant_status": int, "enrichment_status": int,
                 "background_status": int}


class RunRecordError(ValueError):
    """A run's `_run.json` that is not a JSON object (cut short, edited by hand), or a manifest record whose fields
    are not of their types (RecordError)."""


class RecordError(RunRecordError):
    """A commit record whose fields are not of their types; the reader adds the file and line."""


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


def mark_redone(run_uri: str, shard_ids: Iterable[str]) -> None:
    """Before committed shards are done again (their files were lost): on S3 a `_manifest.d/redone/<id>` marker
    each, so that their new records replace the lines `_manifest.jsonl` may hold for them (`_unconsolidated`).
    Locally the manifest's last line of a shard wins already."""
    if storage.is_s3(run_uri):
        with concurrent.futures.ThreadPoolExecutor(max_workers=LOOKUP_THREADS) as pool:
            list(pool.map(lambda shard: storage.write_atomic(storage.join(run_uri, MANIFEST_DIR, REDONE_DIR, shard),
                                                             b""), shard_ids))


def load(run_uri: str) -> dict[str, ShardRecord]:
    """Committed shards by id (`iter_records`). Tolerates a torn last line (a crash mid-append is not a commit).
    Holds every record: for a run of 100,000s of shards, stream with `iter_records` instead."""
    return {record.shard_id: record for record in iter_records(run_uri)}


LOOKUP_THREADS = 16  # commit records fetched at once from S3
REDONE_DIR = "redone"  # on S3, under _manifest.d/: a marker per shard committed again after it was folded in
FEW_RECORDS = 1024  # lost_files checks up to this many records file by file (a batch), more by listing the folders
_SHARD_ID = re.compile(rb'"shard_id"\s*:\s*"([^"]+)"')  # as json.dumps writes it, or compacted (jq -c)
_CHUNK = 8 << 20


def _lines(uri: str) -> Iterator[bytes]:
    """The lines of a (possibly big) file, read in chunks."""
    fs, path = storage.filesystem(uri)
    try:
        stream = fs.open_input_stream(path)
    except FileNotFoundError:
        return
    with stream:
        rest = b""
        while chunk := stream.read(_CHUNK):
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            yield from lines
        if rest:
            yield rest


def _parse(line: bytes, where: str = "") -> ShardRecord | None:
    """The record of a manifest line; None for a blank or torn one (a crash mid-append). A whole record whose
    fields are not of their types is a RecordError naming `where` (the file and line)."""
    line = line.strip()
    if not line:
        return None
    try:
        return ShardRecord.from_dict(json.loads(line))
    except RecordError as exc:
        raise RecordError(f"{where}: {exc} (remove that line and resume the run to make the shard again)") from None
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError, AttributeError):
        return None  # torn write of an uncommitted record (AttributeError: a JSON value that is not an object)


def iter_records(run_uri: str) -> Iterator[ShardRecord]:
    """Every committed shard's record, streamed, once per shard (the last record of a shard committed twice): two
    passes over `_manifest.jsonl`, holding only the shard ids, never the records. On S3 the records not yet
    consolidated are fetched too. A local `run_uri` that is a file, or lies under one, is a NotADirectoryError
    naming that file."""
    where = storage.not_a_folder(run_uri)
    if where is not None:
        raise NotADirectoryError(f"{run_uri} is not a run folder of `moon run`: it {where}")
    last = _last_line_of_each(run_uri)
    newer = _unconsolidated(run_uri, set(last))[0] if storage.is_s3(run_uri) else []
    for shard in map(_shard_of, newer):  # redone since it was folded in: the record object is the newer one
        last.pop(shard, None)
    wanted = set(last.values())
    path = storage.join(run_uri, MANIFEST)
    for number, line in enumerate(_lines(path)):
        if number in wanted:
            record = _parse(line, f"{path} line {number + 1}")
            if record is not None:
                yield record
    if newer:
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=LOOKUP_THREADS)
        try:  # fetched 16 at a time, yielded in order; a reader that stops early cancels the rest
            for uri, text in zip(newer, pool.map(storage.read_text, newer)):
                yield _record_object(uri, text)
        finally:
            pool.shutdown(cancel_futures=True)


def _record_object(uri: str, text: str) -> ShardRecord:
    """The record of an S3 commit object (`_manifest.d/<id>.json`, written whole); a RecordError naming it when it
    is not one."""
    try:
        return ShardRecord.from_dict(json.loads(text))
    except RecordError as exc:
        raise RecordError(f"{uri}: {exc} (delete it and resume the run to make the shard again)") from None
    except (ValueError, TypeError, AttributeError) as exc:
        raise RecordError(f"{uri}: not a commit record ({exc}; delete it and resume the run to make the shard "
                          "again)") from None


def _last_line_of_each(run_uri: str) -> dict[str, int]:
    """shard id -> the number of its last line in `_manifest.jsonl`."""
    last: dict[str, int] = {}
    for number, line in enumerate(_lines(storage.join(run_uri, MANIFEST))):
        shard = _complete_line_shard(line)
        if shard is not None:
            last[shard] = number
    return last


def _complete_line_shard(line: bytes) -> str | None:
    """The shard id of a whole record line, without parsing it; None for a blank or torn line (a crash mid-append
    leaves a line cut short, or glued to the start of the next record: two ids on one line)."""
    found = _SHARD_ID.findall(line)
    if len(found) != 1 or not line.rstrip().endswith(b"}"):
        return None
    return found[0].decode()


def _unconsolidated(run_uri: str, known: set[str]) -> tuple[list[str], list[str]]:
    """(URIs of the S3 commit records (`_manifest.d/<id>.json`) not folded in: whose shard `known` lacks, or that
    were committed again since (a `_manifest.d/redone/<id>` marker), URIs of those markers)."""
    folder = storage.join(run_uri, MANIFEST_DIR)
    markers = storage.list_files(storage.join(folder, REDONE_DIR))
    redone = {uri.rsplit("/", 1)[-1] for uri in markers}
    found = storage.list_files(folder, ".json")
    return [uri for uri in found if _shard_of(uri) not in known or _shard_of(uri) in redone], markers


def _shard_of(record_uri: str) -> str:
    return record_uri.rsplit("/", 1)[-1][: -len(".json")]


def committed(run_uri: str, shard_ids: Iterable[str]) -> dict[str, ShardRecord]:
    """The commit records of `shard_ids` (those committed), looked up without loading the manifest: on S3 one
    request per shard (its `_manifest.d/<id>.json`); locally one pass over `_manifest.jsonl` that parses only the
    lines of these shards."""
    wanted = set(shard_ids)
    if not wanted:
        return {}
    if storage.is_s3(run_uri):
        def fetch(shard_id: str) -> ShardRecord | None:
            uri = storage.join(run_uri, MANIFEST_DIR, f"{shard_id}.json")
            try:
                text = storage.read_text(uri)
            except FileNotFoundError:
                return None
            return _record_object(uri, text)

        with concurrent.futures.ThreadPoolExecutor(max_workers=min(LOOKUP_THREADS, len(wanted))) as pool:
            return {r.shard_id: r for r in pool.map(fetch, sorted(wanted)) if r is not None}
    out: dict[str, ShardRecord] = {}
    path = storage.join(run_uri, MANIFEST)
    for number, line in enumerate(_lines(path)):
        if _complete_line_shard(line) in wanted:
            record = _parse(line, f"{path} line {number + 1}")
            if record is not None:
                out[record.shard_id] = record
    return out


def consolidate(run_uri: str) -> int:
    """On S3, fold the commit records written since the last consolidation into `_manifest.jsonl` (fetching only
    those, and streaming the file through a local temp file); returns how many were added. Locally
    `_manifest.jsonl` is the manifest already: nothing to do."""
    if not storage.is_s3(run_uri):
        return 0
    new, markers = _unconsolidated(run_uri, set(_last_line_of_each(run_uri)))
    if not new:
        return 0
    replaced = set(map(_shard_of, new))
    target = storage.join(run_uri, MANIFEST)
    with storage.publishing(target) as tmp, open(tmp, "wb") as out:
        for line in _lines(target):
            if line.strip() and _complete_line_shard(line) not in replaced:
                out.write(line + b"\n")
        with concurrent.futures.ThreadPoolExecutor(max_workers=LOOKUP_THREADS) as pool:
            for uri, text in zip(new, pool.map(storage.read_text, new)):
                out.write(_record_object(uri, text).to_json().encode() + b"\n")
    for marker in markers:  # folded in (a marker written since stays: its record is folded again next time)
        storage.delete(marker)
    return len(new)


def data_files(run_uri: str, records: Iterable[ShardRecord] | None = None) -> list[str]:
    """URIs of the committed data shards, in shard order: what trainers and the report read."""
    records = load(run_uri).values() if records is None else records
    ordered = sorted(records, key=lambda r: (r.source_uri, r.row_start))
    # a file two records name (a manifest edited by hand) is read once: its products would count twice
    return list(dict.fromkeys(storage.join(run_uri, r.data_file) for r in ordered if r.data_file))


def read_run_file(run_uri: str) -> dict[str, Any] | None:
    """The run's `_run.json` (identity, run id, when), None when the folder has none; a RunRecordError naming the
    file when it is not a JSON object. Errors of reaching the folder are left as they are."""
    uri = storage.join(run_uri, RUN_FILE)
    if not storage.exists(uri):
        return None
    try:
        record = json.loads(storage.read_text(uri))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunRecordError(f"{uri}: not a readable run record ({exc})") from None
    if not isinstance(record, dict):
        raise RunRecordError(f"{uri}: not a readable run record (a JSON {type(record).__name__}, not an object)")
    return record


def enclosing_run(uri: str) -> str | None:
    """The nearest run folder (one holding RUN_FILE) that `uri` lies under, `uri` itself left out; None when none.
    One existence check per folder above it (on S3, per prefix up to the bucket)."""
    if storage.is_s3(uri):
        bucket, key = storage.split_s3(uri)
        parts = [p for p in key.split("/") if p]
        above = ["/".join(parts[:i]) for i in range(len(parts) - 1, -1, -1)]
        folders = [f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}" for prefix in above]
    else:
        folders = [str(p) for p in Path(os.path.realpath(uri)).parents]
    return next((folder for folder in folders if storage.exists(storage.join(folder, RUN_FILE))), None)


def lost_files(run_uri: str, records: Iterable[ShardRecord], verify: bool = False) -> dict[str, str]:
    """Committed shards whose data or quarantine file is no longer in the run folder, or whose checksummed file
    (the data file, else the quarantine file) no longer has the size it was committed with (overwritten, cut
    short): shard id -> that file, and how it changed. One job's batch (up to FEW_RECORDS records) is checked
    file by file, LOOKUP_THREADS at a time; more list data/ and quarantine/ once each (names and sizes), however
    many shards the run has. With `verify`, the checksummed files that kept their size are also read whole and
    their sha256 compared with the record's: a file overwritten by one of the same size is found too."""
    records = list(records)
    files = [(record.shard_id, file, size) for record in records for file, _, size in checked_files(record)]
    if len(records) <= FEW_RECORDS:
        def size_of(file: str) -> int | None:
            return storage.size(storage.join(run_uri, file))

        with concurrent.futures.ThreadPoolExecutor(max_workers=LOOKUP_THREADS) as pool:
            sizes = list(pool.map(size_of, [file for _, file, _ in files]))
    else:
        listed = {folder: storage.list_sizes(storage.join(run_uri, folder), ".parquet")
                  for folder in (DATA_DIR, QUARANTINE_DIR)}
        sizes = [listed.get(file.rpartition("/")[0], {}).get(file.rpartition("/")[2]) for _, file, _ in files]
    lost: dict[str, str] = {}
    for (shard, file, committed_bytes), size in zip(files, sizes):
        if size is None:
            lost.setdefault(shard, f"{file} (missing)")
        elif committed_bytes and size != committed_bytes:  # 0: a record that did not keep its size
            lost.setdefault(shard, f"{file} ({size} bytes, committed with {committed_bytes})")
    if verify:
        lost.update(_changed_bytes(run_uri, [r for r in records if r.shard_id not in lost]))
    return lost


def checked_files(record: ShardRecord) -> list[tuple[str, str, int]]:
    """(file, sha256, bytes) of each file of a committed shard, as its record keeps them ("" and 0 where it does not:
    a quarantine file beside a data file, in records written before the quarantine file's were kept)."""
    out = []
    if record.data_file:
        out.append((record.data_file, record.checksum, record.bytes))
    if record.quarantine_file:
        if record.data_file:
            out.append((record.quarantine_file, record.quarantine_checksum, record.quarantine_bytes))
        else:
            out.append((record.quarantine_file, record.checksum, record.bytes))
    return out


VERIFY_PROGRESS_SECONDS = 30.0  # how often a long verification logs how far it got


def _changed_bytes(run_uri: str, records: list[ShardRecord]) -> dict[str, str]:
    """The records whose checksummed file no longer has the sha256 it was committed with (read LOOKUP_THREADS
    files at a time), with the files' progress logged every VERIFY_PROGRESS_SECONDS."""
    files = [(r.shard_id, file, checksum, size) for r in records for file, checksum, size in checked_files(r)
             if checksum]

    def digest(item: tuple[str, str, str, int]) -> str | None:
        try:
            return storage.sha256(storage.join(run_uri, item[1]))
        except FileNotFoundError:  # deleted since its size was read
            return None

    changed: dict[str, str] = {}
    total = sum(size for *_, size in files)
    done = read = 0
    last = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=LOOKUP_THREADS) as pool:
        for (shard, file, checksum, size), found in zip(files, pool.map(digest, files)):
            if found is None:
                changed.setdefault(shard, f"{file} (missing)")
            elif found != checksum:
                changed.setdefault(shard, f"{file} (its bytes are not those it was committed with: sha256 differs)")
            done, read = done + 1, read + size
            if time.monotonic() - last >= VERIFY_PROGRESS_SECONDS:
                last = time.monotonic()
                log.info("verified %d of %d shard files (%.1f of %.1f GB)", done, len(files), read / 1e9,
                         total / 1e9)
    return changed


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
        raise FileNotFoundError(f"{run_uri}: no committed shards; its run was only planned (--plan-only), or failed "
                                "or was interrupted before the first shard was committed: run `moon run` again with "
                                "the same --input, config and --output to resume it")
    raise FileNotFoundError(f"{run_uri} is not a run folder of `moon run` (no {RUN_FILE})")


def totals(records: Iterable[ShardRecord]) -> dict[str, Any]:
    """Run-level sums: shards, rows in/out/quarantined, bytes, and every tally by name (_TALLY_FIELDS: reasons,
    stage seconds, variant, enrichment and background statuses)."""
    sums = ("rows_in", "rows_out", "rows_quarantined", "bytes")
    out: dict[str, Any] = {"shards": 0, **dict.fromkeys(sums[:-1], 0), **{name: {} for name in _TALLY_FIELDS},
                           "bytes": 0}  # the order of the summary JSON
    for r in records:
        out["shards"] += 1
        for name in sums:
            out[name] += getattr(r, name)
        for key in _TALLY_FIELDS:
            for name, value in getattr(r, key).items():
                out[key][name] = out[key].get(name, 0) + value
    return out

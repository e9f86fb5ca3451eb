"""Reading catalogues: find the input files, stage them as shard-friendly Parquet, read one shard's rows.

Input is one file or a directory/prefix of files (listed recursively, as Ray Data and pyarrow datasets do): Parquet,
JSONL (.jsonl/.ndjson/.json) or CSV, each optionally gzip-compressed (text formats), local or s3://. Every row gets a
stable index within its source file; shards are row ranges of a source. Reading a shard must be cheap and exact,
whatever the size of the catalogue, so:
- Parquet files whose row groups are at most a few shards long, and not too many, are read in place;
- CSV, JSONL and Parquet files with huge row groups (or with so many that their footer alone would cost each
  reader seconds) are first copied, streaming, into `<output>/_input/<key>/part-NNNNN.parquet`: parts of
  `PART_GROUPS` row groups of one shard each, so that a shard read opens one part and parses a footer of bounded
  size, and `_staged.json` (written last: the copy is complete). The copy also makes text formats safe:
  each line is parsed on its own, so a malformed line or a value of the wrong type becomes one quarantined row
  (`_parse_error`, with the line kept in `_raw`) instead of a failed read.
Types are normalised here to the input contract (augment.core.schema.INPUT_FIELDS); columns other than the contract's
are carried through (Parquet keeps their types, dictionary-encoded columns decoded to their values; text formats give
strings). A file that cannot be read, and a config column mapping that names no column of it, are InputErrors naming
the file.

This module must not import Ray: the planner runs on Airflow workers.
"""
from __future__ import annotations

import base64
import binascii
import bisect
import codecs
import concurrent.futures
import contextlib
import csv
import dataclasses
import io
import json
import logging
import posixpath
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from augment.core import schema as S
from augment.core.names import PARSE_ERROR, Reason
from augment.core import storage
from augment.core.manifest import RUN_FILE  # a folder holding it is a run folder (`moon run`'s output), not input
from augment.core.util import JSONLimitError, json_loads, stable_hash

log = logging.getLogger(__name__)

PARQUET_SUFFIXES = (".parquet", ".pq")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz", ".json.gz")
CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz")
MAX_RAW_CHARS = 10_000
MAX_LINE_BYTES = 64 << 20  # a longer JSONL line is quarantined unread (an inline data-URL image stays well under)
STAGED_MARKER = "_staged.json"  # in a staged copy's folder, written last: rows, parts, schema, column notes
WRITE_THREADS = 2  # staged parts written at once (Parquet encoding runs outside the GIL)
PART_GROUPS = 1024  # row groups (one shard each) per staged part: a part's footer stays under a megabyte
MAX_GROUPS_IN_PLACE = 8192  # a Parquet input with more row groups is restaged (its footer would be megabytes)
SUPPORTED = ".parquet, .jsonl/.ndjson/.json or .csv/.tsv"
NAMED_FILES = 5  # skipped files named in a warning or an error
DECOMPRESSION_ERRORS = ("inflate", "compressed stream", "zlib", "gzip")  # pyarrow's words for bad compressed data


class InputError(ValueError):
    """The input as a whole cannot be read (missing, unsupported format, no usable columns)."""


def detect_format(uri: str) -> str:
    name = uri.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    raise InputError(
        f"cannot tell the format of {uri}: use a .parquet, .jsonl/.ndjson/.json or .csv/.tsv file (text formats may be .gz)"
    )


def inputs(input_uri: str) -> list[dict[str, Any]]:
    """The input files, each as its `fingerprint` (`uri`, size, mtime): the file itself, or the supported files
    anywhere under a directory/prefix (see `folder_inputs`), sorted by their path in it. A folder's fingerprints
    come from its listing, one request for a folder of 2,000 parts rather than one each."""
    if storage.is_dir(input_uri):
        return folder_inputs(input_uri)
    if not storage.exists(input_uri):
        raise InputError(f"input {input_uri} does not exist")
    detect_format(input_uri)
    return [fingerprint(input_uri)]


def folder_inputs(folder: str) -> list[dict[str, Any]]:
    """The fingerprints of the supported files under `folder`, at any depth (`sub/b.parquet`, Hive-style
    `year=2024/part-0.parquet`), sorted by their path relative to it; a file directly in it is
    `storage.join(folder, name)`, as shard ids have always named it. Skipped, as Ray Data and pyarrow datasets skip
    them: names starting with `.` or `_` at any level (`_SUCCESS`, `.git/`, staged copies), and run folders
    (holding `_run.json`: a run written inside the input folder is not input). Files of other extensions are
    skipped with a warning naming them: nothing is left out without a word."""
    fs, root = storage.filesystem(folder)
    infos = {entry.path[len(root):].lstrip("/"): entry
             for entry in fs.get_file_info(pafs.FileSelector(root, recursive=True)) if entry.type == pafs.FileType.File}
    runs = sorted({posixpath.dirname(p) for p in infos if posixpath.basename(p) == RUN_FILE})
    files, other, hidden = [], [], 0
    for path in sorted(infos):
        if any(not run or path.startswith(run + "/") for run in runs):
            continue
        if any(part.startswith((".", "_")) for part in path.split("/")):
            hidden += 1
        elif path.lower().endswith(PARQUET_SUFFIXES + JSONL_SUFFIXES + CSV_SUFFIXES):
            files.append(path)
        else:
            other.append(path)
    _report_skipped(folder, runs, other, hidden)
    if not files:
        found = f" (only {_count(len(other), 'other file')}: {_names(other)})" if other else ""
        raise InputError(f"no .parquet, .jsonl or .csv files under {folder}{found}")
    return [_fingerprint(storage.join(folder, path), infos[path]) for path in files]


def _report_skipped(folder: str, runs: list[str], other: list[str], hidden: int) -> None:
    """One log line per kind of file `folder_inputs` leaves out."""
    for run in runs:
        if run:
            log.warning("%s: skipping the run folder %s inside it (a run's output is not input)", folder, run)
        else:
            log.warning("%s is the output folder of a run: its files are not input", folder)
    if other:
        log.warning("%s: skipping %s not ending in %s (text may be .gz): %s", folder, _count(len(other), "file"),
                    SUPPORTED, _names(other))
    if hidden:
        log.info("%s: skipping %s (names starting with . or _)", folder, _count(hidden, "hidden or underscore file"))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _names(paths: list[str]) -> str:
    return ", ".join(paths[:NAMED_FILES]) + (", ..." if len(paths) > NAMED_FILES else "")


def fingerprint(uri: str) -> dict[str, Any]:
    """Identity of an input file's content for resume checks: size and modification time (or ETag-less mtime)."""
    fs, path = storage.filesystem(uri)
    return _fingerprint(uri, fs.get_file_info(path))


def _fingerprint(uri: str, info: pafs.FileInfo) -> dict[str, Any]:
    mtime = info.mtime.timestamp() if info.mtime is not None else None
    return {"uri": uri, "size": info.size, "mtime": mtime}


@dataclasses.dataclass
class Source:
    uri: str  # as the user named it; lineage and shard ids use this
    format: str
    read_uri: str  # the Parquet file shards are read from (the source itself), or the folder of its staged parts
    num_rows: int
    schema: pa.Schema  # normalised input schema (contract + carried columns + bookkeeping)
    fingerprint: dict[str, Any]
    # Pass-through columns carried under another name (schema.carried_name: `color` -> `input_color`), and
    # columns not carried at all (names starting with `_`).
    renamed: dict[str, str] = dataclasses.field(default_factory=dict)
    not_carried: list[str] = dataclasses.field(default_factory=list)
    part_rows: int | None = None  # staged: rows per part (part k holds rows [k * part_rows, (k + 1) * part_rows))
    # The contract columns of config input.columns whose mapped column this file holds (None: not recorded).
    mapped: list[str] | None = None

    def locate(self, row: int) -> tuple[str, int]:
        """(the Parquet file holding source row `row`, the source row of that file's first row)."""
        if not self.part_rows:
            return self.read_uri, 0
        k = row // self.part_rows
        return self._parts()[k], k * self.part_rows

    def read_files(self) -> list[str]:
        """Every Parquet file of the source's rows, in row order."""
        if not self.part_rows:
            return [self.read_uri]
        return list(self._parts())

    def _parts(self) -> tuple[str, ...]:
        """The staged parts' URIs, made once per source (a plan locates 100,000s of shards)."""
        key = (self.read_uri, self.part_rows, self.num_rows)
        if getattr(self, "_parts_key", None) != key:
            self._parts_cache = tuple(part_uri(self.read_uri, k) for k in range(-(-self.num_rows // self.part_rows)))
            self._parts_key = key
        return self._parts_cache

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (the saved plan keeps its sources), schema included; `from_dict` reads it back."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "schema"}
        return data | {"schema": schema_to_text(self.schema)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Source":
        return cls(**(data | {"schema": schema_from_text(data["schema"])}))


def part_uri(folder: str, k: int) -> str:
    return storage.join(folder, f"part-{k:05d}.parquet")


def schema_to_text(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def schema_from_text(text: str) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


# ---------------------------------------------------------------------------------------------------------------
# Column mapping and normalisation
# ---------------------------------------------------------------------------------------------------------------
def rename_map(columns: list[str], mapping: dict[str, str]) -> dict[str, str]:
    """Source column name -> its name in the run: the contract name for mapped columns (`mapping` is config
    input.columns {contract: source}, plus `brand` -> `catalog_brand`), `input_<name>` for a pass-through
    column named like a column the pipeline writes (schema.carried_name)."""
    out = {}
    for contract, source in mapping.items():
        if source in columns:
            out[source] = S.INPUT_COLUMN_ALIASES.get(contract, contract)
    for alias, contract in S.INPUT_COLUMN_ALIASES.items():
        if alias in columns and contract not in out.values() and alias not in out:
            out[alias] = contract
    for name in columns:
        if name not in out and S.carried_name(name) != name:
            out[name] = S.carried_name(name)
    return out


def carried_renames(columns: list[str], mapping: dict[str, str], uri: str) -> dict[str, str]:
    """The pass-through columns rename_map carries under another name (`color` -> `input_color`). Two input
    columns that would end up with one name (`color` and `input_color`) are an InputError."""
    renames = rename_map(columns, mapping)
    final: dict[str, str] = {}
    for name in columns:
        target = renames.get(name, name)
        if target in final:
            pair = (final[target], name)
            written = [n for n in pair if S.carried_name(n) != n]
            raise InputError(
                f"{uri}: columns {pair[0]!r} and {pair[1]!r} would both be named {target!r} in the shards"
                + (f" (the pipeline writes {written[0]!r} itself)" if written else "")
                + "; rename one of them in the input"
            )
        final[target] = name
    return {k: v for k, v in renames.items() if v != k and v == S.carried_name(k)}


def check_mapping(columns: list[str], mapping: dict[str, str], uri: str) -> list[str]:
    """The contracts of `mapping` (config input.columns) whose column is in `columns`. A file with neither the
    mapped column nor the contract column itself is an InputError naming the file and its columns: a mistyped
    name would otherwise quarantine every row (`missing_title`) or drop a column without a word. (`check_mapped`
    then requires each mapped column in at least one file.)"""
    found = []
    for contract, source in mapping.items():
        if source in columns:
            found.append(contract)
            continue
        target = S.INPUT_COLUMN_ALIASES.get(contract, contract)
        if not any(S.INPUT_COLUMN_ALIASES.get(name, name) == target for name in columns):
            listed = ", ".join(columns[:20]) + (", ..." if len(columns) > 20 else "")
            raise InputError(f"input.columns.{contract}: column {source!r} is not in {uri} (columns: {listed})")
    return found


def check_mapped(sources: list[Source], mapping: dict[str, str], input_uri: str) -> None:
    """InputError unless each column of `mapping` is in at least one of `sources` (check_mapping lets a file
    without it through when it has the contract column itself: a folder may mix old and new exports). Files
    without rows have no columns to check; a file staged before its columns were recorded skips the check."""
    recorded = [s for s in sources if s.mapped is not None]
    if not recorded or any(s.mapped is None and s.num_rows for s in sources):
        return
    for contract, source in mapping.items():
        if any(contract in s.mapped for s in recorded):
            continue
        where = (f"{recorded[0].uri}, which has" if len(sources) == 1
                 else f"any of the {len(sources)} files under {input_uri}, which each have")
        raise InputError(f"input.columns.{contract}: column {source!r} is not in {where} a {contract!r} column "
                         "itself; remove the mapping, or name the column it should read")


def _data_url_bytes(text: str) -> bytes | None:
    """The bytes of a `data:` URL (RFC 2397, base64; its scheme and `base64` in any case), None for any other text
    (a path or URI); ValueError saying why for a data URL whose bytes cannot be read. Line breaks (as
    base64.encodebytes writes them), the URL-safe alphabet and missing padding are read."""
    if text[:5].lower() != "data:":
        return None
    header, comma, data = text.partition(",")
    if not comma or len(header) > 1000:
        raise ValueError("no comma ends its header (data:image/<type>;base64,<data>)")
    if not header.lower().endswith(";base64"):
        raise ValueError("not base64 (data:image/<type>;base64,<data>)")
    data = "".join(data.split())
    if "-" in data or "_" in data:
        data = data.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"its base64 does not decode: {exc}") from None


def normalise_text_row(record: dict[str, Any], renames: dict[str, str], extra_names: list[str]) -> dict[str, Any]:
    """One parsed JSON/CSV record -> a row of the staging schema. Never raises: problems go to _parse_error."""
    row: dict[str, Any] = {name: None for name in S.INPUT_FIELDS.names}
    row.update({name: None for name in extra_names})
    problems = []
    mapped = {renames.get(k, k): v for k, v in record.items() if k is not None}
    spelled = {renames.get(k, k): k for k in record if k is not None}  # a problem names the column as the input does
    for name, value in mapped.items():
        if value is None or (isinstance(value, str) and value == "" and name not in ("title",)):
            continue
        if name == "product_id":
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                problems.append(f"{Reason.WRONG_TYPE.of(spelled[name])} ({type(value).__name__})")
            else:
                row[name] = str(value)
        elif name == "image":
            if isinstance(value, str):
                try:
                    decoded = _data_url_bytes(value)
                except ValueError as exc:
                    problems.append(f"{Reason.IMAGE_BAD_DATA_URL} ({exc})")
                    continue
                if decoded is not None:
                    row["image"] = decoded
                elif mapped.get("image_uri") is None:
                    row["image_uri"] = value  # text formats name images by path or URI
                else:
                    problems.append(f"{Reason.WRONG_TYPE.of(spelled[name])} (a path while image_uri is also set)")
            else:
                problems.append(f"{Reason.WRONG_TYPE.of(spelled[name])} ({type(value).__name__})")
        elif name == "category_path" and isinstance(value, list) and all(isinstance(v, str) for v in value):
            row[name] = " > ".join(value)
        elif name in S.INPUT_FIELDS.names:
            if isinstance(value, str):
                row[name] = value
            else:
                problems.append(f"{Reason.WRONG_TYPE.of(spelled[name])} ({type(value).__name__})")
        elif name in row:  # a pass-through column (names starting with `_` are not carried)
            row[name] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    if problems:
        row[PARSE_ERROR] = problems[0]
    return row


def staging_schema(extra_names: list[str]) -> pa.Schema:
    fields = list(S.INPUT_FIELDS) + [pa.field(n, pa.string()) for n in extra_names]
    fields += [pa.field(PARSE_ERROR, pa.string()), pa.field(S.RAW_ROW, pa.string())]
    return pa.schema(fields)


# ---------------------------------------------------------------------------------------------------------------
# Text formats: stream records
# ---------------------------------------------------------------------------------------------------------------
def _open_text(uri: str) -> io.BufferedReader:
    fs, path = storage.filesystem(uri)
    # pyarrow decompresses by extension (.gz, .bz2, .zst)
    return io.BufferedReader(fs.open_input_stream(path, compression="detect"))


@contextlib.contextmanager
def _reading(uri: str) -> Iterator[None]:
    """Compressed data that is not gzip, corrupt or cut short, found while reading `uri`, is an InputError naming
    it: the lines before the damage are not a catalogue to run as if complete. Other read errors (storage that
    cannot be reached) stay OSErrors."""
    try:
        yield
    except OSError as exc:
        if exc.errno is None and any(word in str(exc) for word in DECOMPRESSION_ERRORS):
            raise InputError(f"{uri}: not a readable gzip file ({exc}); it is not gzip-compressed, or it is "
                             "corrupt or cut short") from None
        raise storage.naming_error(exc, uri) from exc


def _lines(f: io.BufferedReader, limit: int) -> Iterator[tuple[bytes, bool]]:
    """(line, whole) for each line of `f`; a line longer than `limit` bytes comes as its start with whole False,
    and the rest of it is skipped without being held."""
    while line := f.readline(limit + 1):
        if len(line) <= limit or line.endswith(b"\n"):
            yield line, True
            continue
        while (rest := f.readline(1 << 20)) and not rest.endswith(b"\n"):
            pass
        yield line[:MAX_RAW_CHARS], False


def iter_jsonl(uri: str) -> Iterator[tuple[dict[str, Any] | None, str | None, str | None]]:
    """(record, error, raw line) per non-blank line. Non-UTF-8 and non-object lines, objects that name a key
    twice, and lines over MAX_LINE_BYTES (their start is kept), are errors, not crashes. A UTF-8 byte order mark before the first line
    is not part of it."""
    limit = MAX_LINE_BYTES
    with _open_text(uri) as f, _reading(uri):
        for number, (raw, whole) in enumerate(_lines(f, limit)):
            if not whole:
                yield (None, f"{Reason.LINE_TOO_LONG} (line {number + 1}: over {limit} bytes)",
                       raw.decode("utf-8", errors="replace"))
                continue
            if number == 0:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            if not raw.strip():
                continue
            raw = raw.rstrip(b"\r\n")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield (None, f"{Reason.INVALID_UTF8} (line {number + 1})",
                       raw.decode("utf-8", errors="replace")[:MAX_RAW_CHARS])
                continue
            try:
                record = json_loads(text, unique_keys=True)
            except JSONLimitError as exc:  # an integer of over 4,300 digits; arrays nested too deep
                yield None, f"{Reason.INVALID_JSON} (line {number + 1}: {exc.msg})", text[:MAX_RAW_CHARS]
                continue
            except json.JSONDecodeError as exc:  # also an object that names a key twice
                yield None, f"{Reason.INVALID_JSON} ({exc.msg})", text[:MAX_RAW_CHARS]
                continue
            if not isinstance(record, dict):
                yield None, f"{Reason.INVALID_JSON} (a {type(record).__name__}, not an object)", text[:MAX_RAW_CHARS]
                continue
            if "\\u" in text and _has_surrogates(json.dumps(record, ensure_ascii=False)):
                # a `\ud800` escape of half a surrogate pair: valid JSON, but no UTF-8 text can hold it
                yield (None, f"{Reason.INVALID_UTF8} (line {number + 1}: an escape of half a surrogate pair)",
                       text[:MAX_RAW_CHARS])
                continue
            yield record, None, None


def iter_csv(uri: str) -> Iterator[tuple[dict[str, Any] | None, str | None, str | None]]:
    """(record, error, raw row) per row. A UTF-8 byte order mark (Excel writes one) is not part of the header.

    A record the csv module cannot read (a field over its size limit) is skipped to its real end, found by
    following its quotes, so that the lines of a quoted field are never read as records of their own. A quoted
    field left open to the end of the file (a file cut short, a stray quote) is one quarantined row, and the rows
    after its first line are read again as rows."""
    delimiter = "\t" if ".tsv" in uri.lower() else ","
    header: list[str] | None = None
    resume_at = 0  # lines already read as rows or quarantined
    while True:
        with _open_text(uri) as f, _reading(uri):
            lines = _CsvLines(io.TextIOWrapper(f, encoding="utf-8-sig", errors="surrogateescape", newline=""))
            lines.skip(resume_at)
            reader = csv.DictReader(lines, fieldnames=header, delimiter=delimiter)
            if header is None:
                header = reader.fieldnames  # reads the header line
                if header is None:
                    return
                twice = sorted({name for name in header if name and header.count(name) > 1})
                if twice:
                    raise InputError(f"{uri}: the header names column {twice[0]!r} twice (a CSV row would keep only "
                                     "the last of its values); rename one")
            while True:
                lines.begin()
                try:
                    record = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    # One malformed record is one quarantined row; the reader carries on after its last line.
                    code = Reason.CSV_FIELD_TOO_LARGE if "field limit" in str(exc) else Reason.INVALID_CSV
                    detail = str(exc).replace(" (", " ").replace(")", "")
                    if lines.skip_record(delimiter):
                        yield None, f"{code} (line {lines.start}: {detail})", lines.first
                        continue
                    record = None  # its quoted field runs to the end of the file
                if record is None or lines.ended:
                    # The last record ended inside a quoted field: it held every line after its first.
                    yield (None, f"{Reason.INVALID_CSV} (line {lines.start}: a quoted field is not closed before "
                                 f"the end of the file; the lines after it are read as rows)", lines.first)
                    resume_at = lines.start
                    break
                bad = [k for k, v in record.items() if isinstance(v, str) and _has_surrogates(v)]
                if bad:
                    raw = json.dumps({k: v.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                                      if isinstance(v, str) else v for k, v in record.items() if k is not None})
                    yield None, f"{Reason.INVALID_UTF8} (line {lines.start}, column {bad[0]})", raw[:MAX_RAW_CHARS]
                    continue
                extra = record.pop(None, None)  # more fields than the header
                if extra:
                    fields = f"{len(header) + len(extra)} fields, {len(header)} in the header"
                    yield (None, f"{Reason.CSV_TOO_MANY_FIELDS} (line {lines.start}: {fields})",
                           json.dumps(record | {"_extra": extra})[:MAX_RAW_CHARS])
                    continue
                yield {k: (v if v != "" else None) for k, v in record.items()}, None, None


class _CsvLines:
    """The lines of a CSV text for csv.reader, numbered, holding the lines of the record being read (`begin`
    starts one): where it starts, its first line (quarantine's `raw`), and whether the end of the file was met
    inside it."""

    def __init__(self, text: io.TextIOWrapper):
        self.text = text
        self.number = 0  # lines read
        self.start = 1
        self.held: list[str] = []  # the lines of the record begun last
        self.ended = False

    def __iter__(self) -> "_CsvLines":
        return self

    def __next__(self) -> str:
        line = next(self.text, None)
        if line is None:
            self.ended = True
            raise StopIteration
        self.number += 1
        self.held.append(line)
        return line

    @property
    def first(self) -> str | None:
        """The first line of the record begun last (its start), as valid UTF-8."""
        if not self.held:
            return None
        return self.held[0].rstrip("\r\n")[:MAX_RAW_CHARS].encode("utf-8", "surrogateescape").decode("utf-8", "replace")

    def skip(self, count: int) -> None:
        for _ in range(count):
            if next(self.text, None) is None:
                return
            self.number += 1

    def begin(self) -> None:
        self.start, self.held = self.number + 1, []

    def skip_record(self, delimiter: str) -> bool:
        """After the csv module gave up on the record begun last: read on to its end, following its quotes as
        the module does (a doubled quote inside a quoted field is a quote). False if the file ends inside it."""
        state = "start"
        lines = iter(list(self.held))
        while True:
            line = next(lines, None)
            if line is None:
                line = next(self.text, None)
                if line is None:
                    return state != "quoted"
                self.number += 1
            for char in line:
                if state == "quoted":
                    state = "quote" if char == '"' else "quoted"
                elif state == "quote" and char == '"':
                    state = "quoted"
                elif char == delimiter:
                    state = "start"
                elif char in "\r\n":
                    return True
                elif state == "start" and char == '"':
                    state = "quoted"
                else:
                    state = "field"


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def stage_text_source(uri: str, fmt: str, work_uri: str, column_map: dict[str, str], rows_per_group: int) -> Source:
    """Copy a JSONL/CSV file into staged Parquet parts (two streaming passes: columns, then rows). A file staged
    before (same content, column map and row groups: a resume, another shard task) is read from its marker."""
    fp = fingerprint(uri)
    target = storage.join(work_uri, stable_hash(fp, column_map, rows_per_group, length=20))
    staged = _read_staged(uri, fmt, target, fp)
    if staged is not None:
        return staged
    records = iter_jsonl if fmt == "jsonl" else iter_csv
    keys: dict[str, None] = {}
    count = 0
    first_problem = ""
    for record, problem, raw in records(uri):
        count += 1
        if count == 1 and fmt == "jsonl" and problem and _opens_json_array(raw):
            raise InputError(f"{uri}: not JSON Lines (one JSON object per line) but a JSON array; write one "
                             "object per line (jq -c '.[]' does)")
        if record:
            keys.update(dict.fromkeys(record))
        first_problem = first_problem or problem or ""
    if count and not keys:
        unit = "line" if fmt == "jsonl" else "row"
        raise InputError(f"{uri}: none of its {count} {unit}s holds a product's fields (first {unit}: "
                         f"{first_problem or 'no fields'})")
    mapped_found = check_mapping(list(keys), column_map, uri) if count else None
    renamed = carried_renames(list(keys), column_map, uri)
    renames = rename_map(list(keys), column_map)
    mapped = [renames.get(k, k) for k in keys]
    extra_names = [k for k in mapped if k not in S.INPUT_FIELDS.names and not k.startswith("_")]
    not_carried = [k for k in mapped if k.startswith("_")]
    if count and "product_id" not in mapped:
        only = next(iter(keys)) if fmt == "csv" and len(keys) == 1 else ""  # a header the comma did not split
        other = next((sep for sep in ";|" if sep in only), None)
        raise InputError(
            f"{uri} has no product_id column (columns: {', '.join(list(keys)[:20])}); "
            + (f"its header looks separated by {other!r}: CSV files are read comma-separated, .tsv files "
               "tab-separated" if other else "map one with input.columns.product_id in the config")
        )
    schema = staging_schema(extra_names)
    rows = _staged_rows(records(uri), renames, extra_names)
    with PartWriter(target, schema, rows_per_group) as parts:
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= rows_per_group:
                parts.write(pa.Table.from_pylist(batch, schema=schema))
                batch = []
        if batch:
            parts.write(pa.Table.from_pylist(batch, schema=schema))
    source = Source(uri=uri, format=fmt, read_uri=target, num_rows=count, schema=schema, fingerprint=fp,
                    renamed=renamed, not_carried=not_carried, part_rows=parts.part_rows, mapped=mapped_found)
    _write_staged_marker(source)
    return source


def _opens_json_array(line: str | None) -> bool:
    """Whether a JSONL file's first line opens a JSON array of objects (`[`, `[{...`): a JSON document, not JSON
    Lines, whose lines would each be quarantined as invalid_json."""
    text = (line or "").lstrip()
    return text.startswith("[") and text[1:].lstrip()[:1] in ("", "{")


def _staged_rows(records, renames, extra_names) -> Iterator[dict[str, Any]]:
    for record, error, raw in records:
        if record is None:
            row = {name: None for name in S.INPUT_FIELDS.names + extra_names}
            row[PARSE_ERROR] = error
            row[S.RAW_ROW] = raw
        else:
            row = normalise_text_row(record, renames, extra_names)
            if row.get(PARSE_ERROR):
                row[S.RAW_ROW] = json.dumps(record, ensure_ascii=False, default=str)[:MAX_RAW_CHARS]
        yield row


@contextlib.contextmanager
def _published(target: str) -> Iterator[Any]:
    """`storage.publishing`, with errors naming `target` rather than the temp file."""
    try:
        with storage.publishing(target) as tmp:
            yield tmp
    except OSError as exc:
        raise storage.naming_error(exc, target) from exc


class PartWriter:
    """Streams tables into the staged parts `folder/part-NNNNN.parquet`: row groups of `rows_per_group` rows,
    `PART_GROUPS` of them per part. Each part is published atomically once full; `_staged.json` (written by the
    caller after a clean exit) marks the copy complete, so an interrupted copy is redone, never half read."""

    def __init__(self, folder: str, schema: pa.Schema, rows_per_group: int):
        self.folder = folder
        self.schema = schema
        self.rows_per_group = rows_per_group
        self.part_rows = rows_per_group * PART_GROUPS
        self.parts = 0
        self._buffer: list[pa.Table] = []
        self._buffered = 0

    def write(self, table: pa.Table) -> None:
        self._buffer.append(table)
        self._buffered += table.num_rows
        while self._buffered >= self.part_rows:
            self._flush(self.part_rows)

    def _flush(self, rows: int) -> None:
        table = pa.concat_tables(self._buffer)
        part, rest = table.slice(0, rows), table.slice(rows)
        self._buffer, self._buffered = ([rest] if rest.num_rows else []), rest.num_rows
        while len(self._pending) >= WRITE_THREADS:  # at most WRITE_THREADS parts in memory, waiting to be written
            self._pending.pop(0).result()
        self._pending.append(self._pool.submit(self._write_part, part, part_uri(self.folder, self.parts)))
        self.parts += 1

    def _write_part(self, part: pa.Table, uri: str) -> None:
        with _published(uri) as tmp:
            # One call writes every row group of the part: per-group Python overhead would dominate big inputs.
            # A staged part is a work file read a few times: snappy, no dictionary, no statistics write shard-sized
            # row groups five times faster than zstd with both (the restaging is most of planning a big input).
            pq.write_table(part, tmp, row_group_size=self.rows_per_group, compression="snappy", use_dictionary=False,
                           write_statistics=False)

    def __enter__(self) -> "PartWriter":
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=WRITE_THREADS, thread_name_prefix="moon-stage")
        self._pending: list[concurrent.futures.Future] = []
        return self

    def __exit__(self, exc_type, *exc) -> None:
        try:
            if exc_type is None and self._buffered:
                self._flush(self._buffered)
            for future in self._pending:  # every part written (or its error raised) before the marker
                future.result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _write_staged_marker(source: Source) -> None:
    marker = {"uri": source.uri, "num_rows": source.num_rows, "part_rows": source.part_rows,
              "schema": schema_to_text(source.schema), "renamed": source.renamed, "not_carried": source.not_carried,
              "mapped": source.mapped}
    storage.write_atomic(storage.join(source.read_uri, STAGED_MARKER), json.dumps(marker, sort_keys=True).encode())


def _read_staged(uri: str, fmt: str, folder: str, fp: dict[str, Any]) -> Source | None:
    """The source staged earlier into `folder`, or None if no complete copy is there."""
    marker_uri = storage.join(folder, STAGED_MARKER)
    if not storage.exists(marker_uri):
        return None
    marker = json.loads(storage.read_text(marker_uri))
    return Source(uri=uri, format=fmt, read_uri=folder, num_rows=marker["num_rows"],
                  schema=schema_from_text(marker["schema"]), fingerprint=fp, renamed=marker["renamed"],
                  not_carried=marker["not_carried"], part_rows=marker["part_rows"], mapped=marker.get("mapped"))


# ---------------------------------------------------------------------------------------------------------------
# Parquet sources
# ---------------------------------------------------------------------------------------------------------------
def _parquet_file(uri: str) -> pq.ParquetFile:
    """The Parquet file at `uri` (errors name it: `_reading_parquet`)."""
    fs, path = storage.filesystem(uri)
    with _reading_parquet(uri):
        return pq.ParquetFile(fs.open_input_file(path))


@contextlib.contextmanager
def _reading_parquet(uri: str) -> Iterator[None]:
    """Errors reading the Parquet file `uri` name it (pyarrow's do not): one that is not Parquet (empty, cut
    short, another format) is an InputError; other read errors (corrupt pages, storage that cannot be reached)
    stay OSErrors."""
    try:
        yield
    except pa.ArrowInvalid as exc:
        raise InputError(f"{uri}: not a readable Parquet file ({exc})") from None
    except OSError as exc:
        raise storage.naming_error(exc, uri) from exc


def parquet_source(uri: str, work_uri: str, column_map: dict[str, str], rows_per_group: int) -> Source:
    pf = _parquet_file(uri)
    arrow_schema = pf.schema_arrow
    mapped_found = check_mapping(arrow_schema.names, column_map, uri)
    renamed = carried_renames(arrow_schema.names, column_map, uri)
    renames = rename_map(arrow_schema.names, column_map)
    mapped = {renames.get(n, n): _value_type(arrow_schema.field(n).type) for n in arrow_schema.names}
    if "product_id" not in mapped:
        raise InputError(
            f"{uri} has no product_id column (columns: {', '.join(arrow_schema.names[:20])}); "
            "map one with input.columns.product_id in the config"
        )
    extra = pa.schema([pa.field(n, t) for n, t in mapped.items() if n not in S.INPUT_FIELDS.names and not n.startswith("_")])
    schema = pa.schema(list(S.INPUT_FIELDS) + list(extra) + [pa.field(PARSE_ERROR, pa.string()), pa.field(S.RAW_ROW, pa.string())])
    fp = fingerprint(uri)
    meta = pf.metadata
    largest_group = max((meta.row_group(i).num_rows for i in range(meta.num_row_groups)), default=0)
    not_carried = [n for n in mapped if n.startswith("_")]
    source = Source(uri=uri, format="parquet", read_uri=uri, num_rows=meta.num_rows, schema=schema, fingerprint=fp,
                    renamed=renamed, not_carried=not_carried, mapped=mapped_found)
    # The file's own columns named like the readers' bookkeeping (`_parse_error`, `_raw`) are not carried, and
    # read in place they would be taken for it: such a file is restaged without them.
    bookkeeping = [n for n in arrow_schema.names if n in (PARSE_ERROR, S.RAW_ROW)]
    if largest_group > 4 * rows_per_group or meta.num_row_groups > MAX_GROUPS_IN_PLACE or bookkeeping:
        # Huge row groups make every shard read decode far more than it needs, and a footer of many thousand
        # groups costs every reader (each Ray worker, each job) seconds to parse: restage into parts of
        # shard-sized row groups.
        folder = storage.join(work_uri, stable_hash(fp, rows_per_group, *(["without", bookkeeping] if bookkeeping
                                                                            else []), length=20))
        staged = _read_staged(uri, "parquet", folder, fp)
        if staged is None:
            log.info("restaging %s (%d row groups of up to %d rows%s) into parts of shard-sized row groups", uri,
                     meta.num_row_groups, largest_group,
                     f"; its columns {', '.join(bookkeeping)} left out" if bookkeeping else "")
            kept = [f for f in pf.schema_arrow if f.name not in bookkeeping]
            plain = pa.schema([f.with_type(_value_type(f.type)) for f in kept])
            with PartWriter(folder, plain, rows_per_group) as parts, _reading_parquet(uri):
                for batch in pf.iter_batches(batch_size=parts.part_rows, columns=[f.name for f in kept]):
                    parts.write(decode_dictionaries(pa.Table.from_batches([batch])))
            source.read_uri, source.part_rows = folder, parts.part_rows
            _write_staged_marker(source)
        else:
            source.read_uri, source.part_rows = folder, staged.part_rows
    return source


def open_source(uri: str, work_uri: str, column_map: dict[str, str], rows_per_group: int) -> Source:
    fmt = detect_format(uri)
    if fmt == "parquet":
        return parquet_source(uri, work_uri, column_map, rows_per_group)
    return stage_text_source(uri, fmt, work_uri, column_map, rows_per_group)


def read_column(source: Source, name: str, column_map: dict[str, str], limit: int | None = None) -> pa.ChunkedArray | None:
    """One contract column of a source (e.g. product_id for duplicate checks), normalised to string. A restaged
    Parquet file is read from the original, whose few big row groups read faster than thousands of small ones."""
    files = [source.uri] if source.format == "parquet" else source.read_files()
    if not files:
        return None
    names = _parquet_file(files[0]).schema_arrow.names
    physical = next((src for src, dst in rename_map(names, column_map).items() if dst == name), name)
    if physical not in names:
        return None
    chunks: list[pa.Array] = []
    rows = 0
    for uri in files:
        if limit is not None and rows >= limit:
            break
        with _reading_parquet(uri):
            part = _decoded(_parquet_file(uri).read(columns=[physical]).column(0))
        chunks.extend(part.chunks)
        rows += len(part)
    column = pa.chunked_array(chunks, type=chunks[0].type) if chunks else pa.chunked_array([], pa.string())
    if limit is not None:
        column = column.slice(0, limit)
    try:
        column = pc.cast(column, pa.string()) if not pa.types.is_string(column.type) else column
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return _null_invalid_utf8(column)[0]


# ---------------------------------------------------------------------------------------------------------------
# Reading one shard
# ---------------------------------------------------------------------------------------------------------------
def read_rows(source_read_uri: str, start: int, stop: int, target: pa.Schema, column_map: dict[str, str]) -> pa.Table:
    """Rows [start, stop) of a staged or in-place Parquet source, conformed to the run's input schema. A file that
    cannot be read is named (_reading_parquet); a staged part (`<run>/_input/...`) with the way to stage it again."""
    try:
        with _reading_parquet(source_read_uri):
            return _read_rows(source_read_uri, start, stop, target, column_map)
    except InputError as exc:  # not Parquet (cut short, overwritten); storage errors stay as they are
        staged = source_read_uri.rpartition("/_input/")[0]
        if not staged:
            raise
        raise InputError(f"{exc}; it is a staged part of the input: delete {storage.join(staged, '_input')} and run the "
                         "same command again, which stages the input anew") from exc


def _read_rows(source_read_uri: str, start: int, stop: int, target: pa.Schema, column_map: dict[str, str]) -> pa.Table:
    fs, path = storage.filesystem(source_read_uri)
    f = fs.open_input_file(path)
    key = (source_read_uri, f.size())
    footer = _FOOTERS.get(key)
    pf = pq.ParquetFile(f, metadata=footer[0] if footer else None)
    if footer is None:
        # A staged file has one row group per shard, so its footer grows with the run: parse it once per process,
        # not once per shard.
        meta = pf.metadata
        offsets = [0]
        for i in range(meta.num_row_groups):
            offsets.append(offsets[-1] + meta.row_group(i).num_rows)
        footer = _FOOTERS[key] = (meta, offsets)
        while len(_FOOTERS) > _FOOTER_CACHE:
            _FOOTERS.pop(next(iter(_FOOTERS)))
    offsets = footer[1]
    first = bisect.bisect_right(offsets, start) - 1
    last = bisect.bisect_left(offsets, stop)
    groups = list(range(max(first, 0), min(last, len(offsets) - 1)))
    if not groups or start >= stop:
        return target.empty_table()
    table = pf.read_row_groups(groups).slice(start - offsets[groups[0]], stop - start)
    return conform(table, target, column_map)


def read_source_rows(source: Source, start: int, stop: int, target: pa.Schema, column_map: dict[str, str]) -> pa.Table:
    """Rows [start, stop) of a source, across its staged parts when it has them."""
    tables = []
    row = start
    while row < stop:
        uri, offset = source.locate(row)
        end = min(stop, offset + source.part_rows) if source.part_rows else stop
        tables.append(read_rows(uri, row - offset, end - offset, target, column_map))
        row = end
    return pa.concat_tables(tables) if tables else target.empty_table()


_FOOTERS: dict[tuple[str, int], tuple[pq.FileMetaData, list[int]]] = {}  # (uri, size) -> (footer, row offsets)
_FOOTER_CACHE = 16


def conform(table: pa.Table, target: pa.Schema, column_map: dict[str, str]) -> pa.Table:
    """Rename, cast and fill columns to `target`. A contract column of the wrong type becomes null for every row
    with `_parse_error` set, so those rows are quarantined with the reason instead of failing the run."""
    renames = rename_map(table.column_names, column_map)
    spelled = {name: source for source, name in renames.items()}  # a problem names the column as the input does
    table = decode_dictionaries(table.rename_columns([renames.get(n, n) for n in table.column_names]))
    n = table.num_rows
    errors = table.column(PARSE_ERROR).to_pylist() if PARSE_ERROR in table.column_names else [None] * n
    if "image" in table.column_names and _is_text(table.schema.field("image").type):
        table, errors = _image_paths_as_uris(table, errors, spelled.get("image", "image"))
    columns = {}
    for field in target:
        if field.name not in table.column_names:
            columns[field.name] = pa.nulls(n, field.type)
            continue
        column = table.column(field.name)
        if column.type == field.type:
            columns[field.name] = column
            continue
        try:
            if field.name == "product_id" and not (pa.types.is_integer(column.type) or _is_text(column.type)):
                raise pa.ArrowInvalid("product_id must be a string or an integer")
            if field.name in S.INPUT_FIELDS.names and field.name != "product_id" and not _safe_cast(column.type, field.type):
                raise pa.ArrowInvalid(f"{column.type} is not {field.type}")
            columns[field.name] = pc.cast(column, field.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            columns[field.name] = pa.nulls(n, field.type)
            errors = [e or f"{Reason.WRONG_TYPE.of(spelled.get(field.name, field.name))} ({column.type})" for e in errors]
    for name, column in columns.items():
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column, bad = _null_invalid_utf8(column)
            if bad:
                columns[name] = column
                errors = [e or (f"{Reason.INVALID_UTF8} (column {spelled.get(name, name)})" if i in bad else None)
                          for i, e in enumerate(errors)]
    columns[PARSE_ERROR] = pa.array(errors, pa.string())
    return pa.table(columns, schema=target)


def _is_text(type_: pa.DataType) -> bool:
    """string, large_string (pandas writes it) or string_view."""
    return pa.types.is_string(type_) or pa.types.is_large_string(type_) or pa.types.is_string_view(type_)


def _image_paths_as_uris(table: pa.Table, errors: list[str | None],
                         spelled: str = "image") -> tuple[pa.Table, list[str | None]]:
    """A text `image` column names images by path or URI, as in text formats: its values move to image_uri. Where
    a row has both, it is quarantined (as a text row would be); an `image_uri` that is not text is left to the
    type check. `spelled`: the image column's name in the input."""
    paths = pc.cast(table.column("image"), pa.string())
    index = table.column_names.index("image")
    if "image_uri" not in table.column_names:
        return table.set_column(index, "image_uri", paths), errors
    uris = table.column("image_uri")
    if not _is_text(uris.type):
        return table.drop_columns(["image"]), errors
    uris = pc.cast(uris, pa.string())
    both = pc.and_(pc.is_valid(paths), pc.is_valid(uris)).to_pylist()
    errors = [e or (f"{Reason.WRONG_TYPE.of(spelled)} (a path while image_uri is also set)" if twice else None)
              for e, twice in zip(errors, both)]
    table = table.drop_columns(["image"])
    return table.set_column(table.column_names.index("image_uri"), "image_uri", pc.coalesce(uris, paths)), errors


def _value_type(type_: pa.DataType) -> pa.DataType:
    """The type of a column's values: a dictionary-encoded column's value type (pandas categories, Spark and
    pyarrow dictionaries), so that the contract's checks see strings and files that differ in encoding only agree."""
    return type_.value_type if pa.types.is_dictionary(type_) else type_


def _decoded(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """`column` as plain values when it is dictionary-encoded."""
    return pc.cast(column, column.type.value_type) if pa.types.is_dictionary(column.type) else column


def decode_dictionaries(table: pa.Table) -> pa.Table:
    """`table` with its dictionary-encoded columns decoded to their values (a row's value is unchanged)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(i, field.with_type(field.type.value_type), _decoded(table.column(i)))
    return table


def _null_invalid_utf8(column: pa.Array | pa.ChunkedArray) -> tuple[pa.Array | pa.ChunkedArray, set[int]]:
    """`column` (of the same kind: an Array or a ChunkedArray) with values that are not valid UTF-8 set to null,
    and their indices. Parquet writers other than Arrow do not always validate strings; one such value must become
    one quarantined row, not a failed run."""
    try:
        column.validate(full=True)
        return column, set()
    except pa.ArrowInvalid:
        pass
    values = pc.cast(column, pa.large_binary() if pa.types.is_large_string(column.type) else pa.binary()).to_pylist()
    texts, bad = [], set()
    for i, value in enumerate(values):
        try:
            texts.append(None if value is None else value.decode("utf-8"))
        except UnicodeDecodeError:
            texts.append(None)
            bad.add(i)
    cleaned = pa.array(texts, column.type)
    return (pa.chunked_array([cleaned], column.type) if isinstance(column, pa.ChunkedArray) else cleaned), bad


def _safe_cast(source: pa.DataType, target: pa.DataType) -> bool:
    """Only lossless representation changes (large_string -> string, large_binary -> binary) are accepted."""
    pairs = {
        (pa.large_string(), pa.string()), (pa.string_view(), pa.string()),
        (pa.large_binary(), pa.binary()), (pa.binary_view(), pa.binary()),
    }
    return (source, target) in pairs

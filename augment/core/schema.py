"""The data contract of the pipeline: input columns, output shard schema, quarantine and manifest records.

This module and names.py are the single definition of every column the pipeline reads or writes, of the stage
order and of the status values. Docs (README "Output schema") and tests are generated from or checked against it;
the trainer reads shards through it. The names that need no Arrow (stage order, `Status`, `Reason`, internal
bookkeeping columns) are defined in names.py and re-exported here. It must not import Ray, torch or any model code: the Airflow image and
readers of the shards import it.
"""
from __future__ import annotations

import functools

import pyarrow as pa

from augment.core.names import (  # noqa: F401  (the schema's names without Arrow; re-exported)
    BACKGROUND_STATUS,
    DUPLICATE,
    PARSE_ERROR,
    QUARANTINE_DETAIL,
    QUARANTINE_REASON,
    QUARANTINE_STAGE,
    RAW_ROW,
    SHARD_ID,
    SOURCE_ROW,
    SOURCE_URI,
    STAGE_ORDER,
    TIMING_PREFIX,
    WORK_IMAGE,
    Reason,
    Status,
)

SCHEMA_VERSION = "1.0"
SCHEMA_METADATA_KEY = b"moon.schema_version"

# ---------------------------------------------------------------------------------------------------------
# Input contract
# ---------------------------------------------------------------------------------------------------------
# Required: product_id, title, and one of image / image_uri. Optional: description, category_path, brand.
# Any other column is carried through untouched (Parquet keeps its type; CSV and JSONL values are strings).
INPUT_FIELDS = pa.schema(
    [
        pa.field("product_id", pa.string()),  # never null in data shards; may be in quarantine
        pa.field("title", pa.string()),
        pa.field("image", pa.binary()),
        pa.field("image_uri", pa.string()),
        pa.field("description", pa.string()),
        pa.field("category_path", pa.string()),
        # The catalogue's brand field. In the output, `brand` is the list of brands (see OUTPUT_FIELDS);
        # the input value is kept verbatim as `catalog_brand`.
        pa.field("catalog_brand", pa.string()),
    ]
)
INPUT_COLUMN_ALIASES = {"brand": "catalog_brand"}

# ---------------------------------------------------------------------------------------------------------
# Generated columns
# ---------------------------------------------------------------------------------------------------------
ENTITY = pa.struct(
    [
        pa.field("label", pa.string()),  # BRAND, CATEGORY, MATERIAL, COLOR, ...
        pa.field("text", pa.string()),  # the span as it stands in the title
        pa.field("start", pa.int32()),  # character offsets into `title`, end exclusive
        pa.field("end", pa.int32()),
        pa.field("id", pa.string()),  # canonical id from the lexicon, or null for rule-found spans
    ]
)

ENRICHMENT = pa.struct(
    [
        pa.field("backend", pa.string()),  # template | openai | vllm | transformers
        pa.field("model", pa.string()),
        pa.field("prompt_id", pa.string()),  # e.g. enrich_title.v1
        pa.field("status", pa.string()),  # ok | fallback:<reason> | rejected:<reason>
        pa.field("attempts", pa.int32()),
    ]
)

VARIANT_KINDS = ("subject", "background", "angle", "logo", "detail")

VARIANT = pa.struct(
    [
        pa.field("kind", pa.string()),  # one of VARIANT_KINDS
        pa.field("image", pa.binary()),  # encoded image bytes when stored inline, else null
        pa.field("uri", pa.string()),  # object-store URI when stored outside the shard, else null
        pa.field("format", pa.string()),  # jpeg | webp | png
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("prompt_id", pa.string()),  # prompt template that produced it (null for prompt-free ops)
        pa.field("prompt", pa.string()),  # rendered instruction, e.g. the chosen background description
        pa.field("model", pa.string()),  # backend/model that produced it, e.g. classic or a model path
        pa.field("seed", pa.int64()),
        pa.field("score", pa.float32()),  # consistency with the subject image and title, 0..1
        pa.field("status", pa.string()),  # ok | filtered | failed:<reason>
    ]
)

LINEAGE = pa.struct(
    [
        pa.field("run_id", pa.string()),
        pa.field("source_uri", pa.string()),
        pa.field("source_row", pa.int64()),
        pa.field("shard_id", pa.string()),
        pa.field("config_hash", pa.string()),
        pa.field("code_version", pa.string()),
    ]
)

OUTPUT_FIELDS = pa.schema(
    [
        pa.field("entities", pa.list_(ENTITY)),
        pa.field("brand", pa.list_(pa.string())),
        pa.field("category", pa.list_(pa.string())),
        pa.field("material", pa.list_(pa.string())),
        pa.field("color", pa.list_(pa.string())),
        pa.field("enriched_title", pa.string()),
        pa.field("enrichment", ENRICHMENT),
        pa.field("background_prompts", pa.list_(pa.string())),
        pa.field("variants", pa.list_(VARIANT)),
        pa.field("lineage", LINEAGE),
    ]
)

# Columns that are the same on every rerun of the same input and config (lineage.run_id aside). Crash/resume
# tests and users comparing two runs use these.
DETERMINISTIC_COLUMNS = (
    "product_id",
    "title",
    "entities",
    "brand",
    "category",
    "material",
    "color",
    "enriched_title",
    "enrichment",
    "background_prompts",
    "variants",
)

# Quarantine files hold the input columns as far as they could be read, plus why and where the row stopped.
QUARANTINE_FIELDS = pa.schema(
    [
        pa.field("stage", pa.string()),
        pa.field("reason", pa.string()),  # a short code, e.g. empty_title, image_undecodable
        pa.field("detail", pa.string()),  # a human-readable sentence
        pa.field("raw", pa.string()),
        pa.field("lineage", LINEAGE),
    ]
)


# ---------------------------------------------------------------------------------------------------------
# Input columns named like a column the pipeline writes
# ---------------------------------------------------------------------------------------------------------
# A catalogue column (other than the contract's) whose name the pipeline writes itself, an output column such
# as `color`, `category` or `entities`, or a quarantine column such as `reason`, is carried through as
# `input_<name>`, in data and quarantine shards alike, with its values unchanged. `brand` is the exception: the
# input contract keeps the catalogue brand as `catalog_brand`. Columns whose names start with `_` are the
# pipeline's bookkeeping and are not carried (pandas' `__index_level_0__`, for one).
CARRIED_PREFIX = "input_"
WRITTEN_COLUMNS = frozenset(OUTPUT_FIELDS.names) | frozenset(QUARANTINE_FIELDS.names)


def carried_name(name: str) -> str:
    """The name a pass-through input column has in the shards."""
    return CARRIED_PREFIX + name if name in WRITTEN_COLUMNS else name


def input_schema(extra: pa.Schema | None = None) -> pa.Schema:
    """The schema rows have after reading: the input contract plus pass-through columns."""
    fields = list(INPUT_FIELDS)
    if extra is not None:
        fields += [f for f in extra if f.name not in INPUT_FIELDS.names]
    return pa.schema(fields)


def output_schema(extra: pa.Schema | None = None) -> pa.Schema:
    """The schema of a committed data shard, with the schema version in its metadata."""
    return with_version(_unique(list(input_schema(extra)) + list(OUTPUT_FIELDS)))


def quarantine_schema(extra: pa.Schema | None = None) -> pa.Schema:
    return with_version(_unique(list(input_schema(extra)) + list(QUARANTINE_FIELDS)))


def _unique(fields: list[pa.Field]) -> pa.Schema:
    """A schema of `fields`; a name that occurs twice (a pass-through column not renamed by carried_name) is an
    error rather than a shard that no reader can use."""
    names = [f.name for f in fields]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"column {repeated[0]!r} is both a pass-through input column and a column the pipeline writes")
    return pa.schema(fields)


def with_version(schema: pa.Schema) -> pa.Schema:
    meta = dict(schema.metadata or {})
    meta[SCHEMA_METADATA_KEY] = SCHEMA_VERSION.encode()
    return schema.with_metadata(meta)


class SchemaVersionError(ValueError):
    """A shard without a schema version, or with one this code cannot read (another major version)."""


def check_version(schema: pa.Schema, where: str = "") -> str:
    """Return the schema version stored in a shard's metadata; SchemaVersionError (one line, naming `where`)
    if it is absent or of another major version than this code's."""
    prefix = f"{where}: " if where else ""
    version = (schema.metadata or {}).get(SCHEMA_METADATA_KEY)
    if version is None:
        raise SchemaVersionError(f"{prefix}not a moon shard: no moon.schema_version in the Parquet metadata")
    found = version.decode(errors="replace")
    if found.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise SchemaVersionError(f"{prefix}shard schema version {found!r} is not one this code reads "
                                 f"({SCHEMA_VERSION}); use a moon-augment release of that schema version")
    return found


class ShardError(SchemaVersionError):
    """A committed shard that cannot be read as this schema: not a readable Parquet file, or a column a reader
    needs missing or of another type. One line naming the file (a SchemaVersionError, so the CLI reports it as
    a mistake in the run folder, not a defect)."""


def unreadable_shard(uri: str, reason: str) -> ShardError:
    """A committed shard whose footer passed the checks but whose data could not be read (a damaged page, found
    only when read): one line naming it, and how to write it again (`moon run` redoes a shard whose file is gone)."""
    return ShardError(f"{uri}: cannot be read ({reason}); if the file is damaged, delete it and resume the run "
                      "(moon run with the run's --output) to write that shard again")


def read_failure(uri: str, exc: BaseException) -> ShardError:
    """unreadable_shard for an error Arrow raised while reading `uri`'s data."""
    return unreadable_shard(uri, " ".join(str(exc).split()) or type(exc).__name__)


SHARD_CHECK_THREADS = 16  # shard footers read at once (S3 latency, not bandwidth, bounds a footer read)


def read_shard_schema(uri: str) -> pa.Schema:
    """The schema of the shard at `uri` (local or s3://), from its Parquet footer only, after checking its version
    (check_version). A file that is not readable Parquet (truncated, overwritten) is a ShardError naming it."""
    import pyarrow.dataset as ds

    from augment.core import storage

    fs, path = storage.filesystem(uri)
    try:
        schema = ds.ParquetFileFormat().inspect(path, filesystem=fs)  # the footer, decoded without Python's help
    except FileNotFoundError:
        raise FileNotFoundError(f"{uri}: a committed shard's data file is missing") from None
    except (pa.ArrowException, OSError) as exc:
        raise ShardError(f"{uri}: not a readable Parquet file: {_reason(exc)}") from exc
    check_version(schema, uri)
    return schema


def check_columns(schema: pa.Schema, names, where: str = "") -> None:
    """ShardError (one line, naming `where` and the column) unless every output column of `names` is in `schema`
    with the type output_schema() gives it: a reader would otherwise read nulls for a missing column, or fail
    deep inside Arrow or Ray on another type."""
    expected = _output_types()
    prefix = f"{where}: " if where else ""
    for name in names:
        want = expected[name]
        if name not in schema.names:
            raise ShardError(f"{prefix}column {name!r} is missing (expected {want})")
        found = schema.field(name).type
        if found != want:
            raise ShardError(f"{prefix}column {name!r} has type {found}, expected {want}")


def check_shard(uri: str, names) -> pa.Schema:
    """The schema of the shard at `uri` (its footer), checked: readable, of this schema version, and the output
    columns `names` present with their types (check_columns)."""
    schema = read_shard_schema(uri)
    check_columns(schema, names, uri)
    return schema


def check_shards(uris, names, extra=(), threads: int = SHARD_CHECK_THREADS) -> pa.Schema:
    """Check every shard before a reader reads any (check_shard over `uris`, footers only, `threads` at once):
    the first shard in `uris` order that fails raises. Returns the union of the shards' columns (each with the
    type of the first shard that has it). The optional columns `extra` (pass-through columns such as labels)
    need not be in every shard, but must have one type wherever they are (null-typed columns aside)."""
    import concurrent.futures

    uris = list(uris)
    union: dict[str, pa.Field] = {}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(threads, len(uris))))
    try:
        for uri, schema in zip(uris, pool.map(lambda uri: check_shard(uri, names), uris)):
            for field in schema:
                seen = union.setdefault(field.name, field)
                if field.name in extra and _clash(seen.type, field.type):
                    raise ShardError(f"{uri}: column {field.name!r} has type {field.type}, "
                                     f"{seen.type} in the shards before it")
                if pa.types.is_null(seen.type):
                    union[field.name] = field
    finally:
        pool.shutdown(cancel_futures=True)  # a failure stops here, not after every other footer is read
    return pa.schema(list(union.values()))


def _clash(one: pa.DataType, other: pa.DataType) -> bool:
    return one != other and not (pa.types.is_null(one) or pa.types.is_null(other))


@functools.lru_cache(maxsize=1)
def _output_types() -> dict[str, pa.DataType]:
    return {field.name: field.type for field in output_schema()}


def _reason(exc: BaseException) -> str:
    """Arrow's reason a file does not open, without its "Could not open Parquet input source '<path>': " lead."""
    text = str(exc).strip()
    text = text.splitlines()[0] if text else type(exc).__name__
    return text.split("': ", 1)[1] if text.startswith("Could not open") and "': " in text else text


def columns(*names: str) -> tuple[str, ...]:
    """`names`, each checked to be a column of a data shard: a reader names the columns it reads through this,
    so that one the contract does not have fails at import time, not deep inside a job."""
    known = set(output_schema().names)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"not output columns of schema {SCHEMA_VERSION}: {', '.join(unknown)}")
    return names


def describe(schema: pa.Schema = None) -> str:
    """A Markdown table of the output columns, used by the README and checked by a test."""
    schema = schema or output_schema()
    rows = ["| column | type |", "|---|---|"]
    for field in schema:
        rows.append(f"| `{field.name}` | `{field.type}` |")
    return "\n".join(rows)

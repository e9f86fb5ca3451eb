"""The names of the data contract that need no Arrow: the stage order, the status values, the quarantine reasons,
the internal columns; and the plan's batch limits, which the Airflow DAG files read at parse time too.

Part of the schema (augment/core/schema.py re-exports every name here); kept apart so that processes without
pyarrow (the Airflow DAG files at parse time) can read them. Every module that names a stage, a status, a
quarantine reason or a bookkeeping column takes it from here.
"""
from __future__ import annotations

import enum

# Batches a saved plan is cut into at most, unless asked otherwise (`moon run --max-batches`; the Airflow DAG
# passes its own `max_tasks`): augment.plan.batch_layout.
PLAN_DEFAULT_BATCHES = 256
# Mapped run_batch tasks of one moon_augment DAG run at most, by default: Airflow's own default `max_map_length` (a
# plan task returning more entries fails), and a number of task instances its scheduler and UI handle without
# strain. `moon plan` cuts its estimate the same way.
DEFAULT_MAX_TASKS = 1024
# With the cluster's GPU count given, batches per GPU: enough that a slow or retried batch holds a small share of
# a GPU's work (a short tail), few enough that job start-up stays a small share of the run.
BATCHES_PER_GPU = 4

# The order in which stages run. A config may leave stages out; it cannot reorder them.
STAGE_ORDER = ("validate", "ner", "enrich_title", "background_prompts", "image_variants", "filter")


class Status(str, enum.Enum):
    """`enrichment.status` and `variants[].status`. A status with a reason is written `<status>:<reason>`
    (`because`); read one back with `Status.of`. Members compare equal to their text ("ok")."""

    OK = "ok"
    FILTERED = "filtered"  # a variant scored below the filter threshold; kept in the shard, not trained on
    FAILED = "failed"  # failed:<reason>: a variant that could not be produced
    REJECTED = "rejected"  # rejected:<reason>: the model's answer (or the template's title) failed the guards
    FALLBACK = "fallback"  # fallback:<error>: the model could not be reached; the title is kept

    def because(self, reason: str) -> str:
        """`failed:<reason>`, `rejected:<reason>`, `fallback:<reason>`."""
        return f"{self.value}:{reason}"

    @classmethod
    def of(cls, status: str) -> "Status":
        """The status of a written value: Status.of("failed:timeout") is Status.FAILED."""
        return cls(status.split(":", 1)[0])



class Reason(str, enum.Enum):
    """Why a row went to quarantine/: its `reason` column and the manifest's `quarantine_reasons`, the code alone or
    `<code>:<what>` (`of`: wrong_type:<column>, stage_error:<exception>). Members are their text (==, str(),
    f-strings). Every code the pipeline writes is listed here (the README's list is checked against it)."""

    __str__ = str.__str__
    __format__ = str.__format__

    # Read errors of text inputs (augment/io.py): the line is kept in the `raw` column.
    INVALID_JSON = "invalid_json"  # a JSONL line that is not a JSON object (or names a key twice)
    LINE_TOO_LONG = "line_too_long"  # a JSONL line over io.MAX_LINE_BYTES (64 MiB); only its start is kept
    INVALID_UTF8 = "invalid_utf8"  # bytes that are not UTF-8 (text inputs; Parquet string columns)
    INVALID_CSV = "invalid_csv"  # a CSV row the csv module cannot parse
    CSV_FIELD_TOO_LARGE = "csv_field_too_large"  # a CSV field over the csv module's size limit
    CSV_TOO_MANY_FIELDS = "csv_too_many_fields"  # a CSV row with more fields than the header
    WRONG_TYPE = "wrong_type"  # wrong_type:<column>: a value (or a Parquet column) of the wrong type
    IMAGE_BAD_DATA_URL = "image_bad_data_url"  # an `image` data URL that is not base64, or does not decode
    # The validate stage (augment/stages/validate/stage.py), in the order it checks.
    MISSING_PRODUCT_ID = "missing_product_id"
    DUPLICATE_PRODUCT_ID = "duplicate_product_id"  # a later occurrence; the first is processed
    MISSING_TITLE = "missing_title"  # null (an empty CSV field is null: CSV cannot tell it from empty)
    EMPTY_TITLE = "empty_title"  # empty or white space
    TITLE_TOO_LONG = "title_too_long"  # over input.max_title_chars characters
    MISSING_IMAGE = "missing_image"  # neither image nor image_uri
    # Untrusted images (augment/imaging/untrusted.py): where they may be read from, then their bytes.
    IMAGE_BUCKET_NOT_ALLOWED = "image_bucket_not_allowed"  # an s3:// URI outside input.allowed_buckets
    IMAGE_URI_UNSUPPORTED = "image_uri_unsupported"  # a scheme other than a path, file:// or s3://
    IMAGE_PATH_OUTSIDE_ROOTS = "image_path_outside_roots"  # a path resolving outside input.allowed_roots
    IMAGE_NOT_FOUND = "image_not_found"
    IMAGE_UNREADABLE = "image_unreadable"  # the file or object exists but cannot be read
    IMAGE_TOO_LARGE = "image_too_large"  # over input.max_image_bytes
    IMAGE_EMPTY = "image_empty"  # zero bytes
    IMAGE_TOO_MANY_PIXELS = "image_too_many_pixels"  # over input.max_image_pixels (decompression bombs)
    IMAGE_TOO_SMALL = "image_too_small"  # shorter side under input.min_image_side
    IMAGE_UNDECODABLE = "image_undecodable"  # not an image of an accepted format, or cut short
    IMAGE_BLANK = "image_blank"  # one flat colour (a placeholder): every channel within imaging.untrusted.BLANK_LEVELS
    # Any stage (augment/pipeline.py): the product made the stage raise; the rest of its batch goes on.
    STAGE_ERROR = "stage_error"  # stage_error:<exception class>

    def of(self, what: str) -> str:
        """`wrong_type:title`, `stage_error:KeyError`."""
        return f"{self.value}:{what}"

# ---------------------------------------------------------------------------------------------------------
# Internal bookkeeping columns, present while rows travel through the stages; never written to data shards.
# ---------------------------------------------------------------------------------------------------------
SHARD_ID = "_shard_id"
SOURCE_URI = "_source_uri"  # the input file a row came from (image paths resolve against it)
SOURCE_ROW = "_source_row"
PARSE_ERROR = "_parse_error"  # why a row of a text input could not be read into the input schema
DUPLICATE = "_duplicate"  # the row repeats an earlier product_id of the input
QUARANTINE_REASON = "_quarantine_reason"
QUARANTINE_STAGE = "_quarantine_stage"
QUARANTINE_DETAIL = "_quarantine_detail"
RAW_ROW = "_raw"  # the input row as JSON text when it could not be parsed into the input schema
TIMING_PREFIX = "_t_"  # _t_<stage>: seconds of that stage's batch time attributed to the row
WORK_IMAGE = "_image"  # the validated working image (RGB JPEG) every later stage reads
BACKGROUND_STATUS = "_background_status"  # a model backend's background prompts: ok, or fallback:<reason>

"""The names of the data contract that need no Arrow: the stage order, the status values, the internal columns.

Part of the schema (augment/core/schema.py re-exports every name here); kept apart so that processes without
pyarrow (the Airflow DAG files at parse time) can read them. Every module that names a stage, a status or a
bookkeeping column takes it from here.
"""
from __future__ import annotations

import enum

# Batches a saved plan is cut into at most, unless asked otherwise (`moon run --max-batches`; the Airflow DAG
# passes its own `max_tasks`): augment.plan.batch_layout.
PLAN_DEFAULT_BATCHES = 256

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

"""The run report: `report/index.html` (figures, charts, quarantine examples) and gallery pages of a sample.

`write_report(run_uri)` is called at the end of `moon run` and by `moon report RUN_DIR`. It reads the run folder
through `augment.core.storage` (local or s3://) and writes only under `<run>/report/`; it never changes shards or the
manifest, and its size is bounded by the sample size, not by the run's.
"""
from augment.ops.report.build import write_report

__all__ = ["write_report"]

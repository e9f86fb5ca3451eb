"""The summary `moon run` prints at the end: variant statuses counted by kind, enrichment statuses by prefix."""
import pyarrow as pa

from augment.commands import variant_counts
from augment.stages import variants
from augment.writer import _variant_status


def test_variant_statuses_other_than_ok_are_broken_down_by_kind():
    ok = variants.record("subject", model="classic", seed=1)
    row = [ok, variants.failed("detail", "no_detail", model="classic", seed=2),
           variants.record("angle", model="classic", seed=3, score=0.1, status="filtered")]
    counts = _variant_status(pa.Table.from_pylist([{"variants": row}, {"variants": [ok, row[1]]}]))
    assert counts["failed"] == 2 and counts["detail:failed"] == 2  # the reason is not part of the bucket
    assert variant_counts(counts) == "failed 2 (detail 2), filtered 1 (angle 1), ok 2"


def test_counts_without_per_kind_entries_print_the_status_totals():
    assert variant_counts({"ok": 3, "failed": 1}) == "failed 1, ok 3"


def test_enrichment_statuses_are_counted_by_prefix_and_explained():
    from augment.commands import enrichment_counts
    from augment.writer import _enrichment_status

    statuses = ["ok", "fallback:timeout", "rejected:guard_dropped_entity", "fallback:connection_error", None]
    counts = _enrichment_status(pa.Table.from_pylist([{"enrichment": {"status": s} if s else None} for s in statuses]))
    assert counts == {"ok": 1, "fallback": 2, "rejected": 1}  # a row without a record is not counted
    assert enrichment_counts(counts) == ("ok 1, fallback 2 (the model could not be reached; the title is kept), "
                                         "rejected 1 (the answer failed the guards; the title is kept)")
    assert enrichment_counts({"ok": 5}) == "ok 5"

import errno

import pyarrow as pa
import pytest

from augment.core import schema as S
from augment.core import storage
from augment.core.names import QUARANTINE_DETAIL
from augment.pipeline import apply_stage
from augment.stages import Rejection, Stage, StageResult


class UpperTitle(Stage):
    """Writes enriched_title = title.upper(); rejects titles containing 'bad'; raises on titles containing 'boom'."""

    name = "enrich_title"
    backend = "upper-test"
    reads = ("title",)
    writes = ("enriched_title",)

    def __init__(self):
        super().__init__()
        self.calls = []

    def process(self, batch):
        self.calls.append(list(batch["product_id"]))
        if any("boom" in t for t in batch["title"]):
            raise ValueError("cannot handle boom")
        if any("outage" in t for t in batch["title"]):
            raise storage.StorageUnavailable(errno.ETIMEDOUT, "the image store timed out")
        rejects = [Rejection("bad_title", t) if "bad" in t else None for t in batch["title"]]
        return StageResult({"enriched_title": [t.upper() for t in batch["title"]]}, rejects)


def table(titles, quarantined=()):
    n = len(titles)
    return pa.table({
        "product_id": [str(i) for i in range(n)],
        "title": titles,
        S.QUARANTINE_REASON: [("earlier" if i in quarantined else None) for i in range(n)],
        S.QUARANTINE_STAGE: [("validate" if i in quarantined else None) for i in range(n)],
        QUARANTINE_DETAIL: [None] * n,
    })


def test_stage_sees_only_live_rows_and_results_scatter_back():
    stage = UpperTitle()
    out = apply_stage(stage, table(["a", "b", "c"], quarantined={1}))
    assert stage.calls == [["0", "2"]]
    assert out.column("enriched_title").to_pylist() == ["A", None, "C"]
    assert out.column(S.QUARANTINE_REASON).to_pylist() == [None, "earlier", None]


def test_rejections_mark_rows_with_stage_and_reason():
    out = apply_stage(UpperTitle(), table(["ok", "bad one"]))
    assert out.column(S.QUARANTINE_REASON).to_pylist() == [None, "bad_title"]
    assert out.column(S.QUARANTINE_STAGE).to_pylist() == [None, "enrich_title"]
    assert out.column(QUARANTINE_DETAIL).to_pylist() == [None, "bad one"]


def test_an_exception_quarantines_only_the_failing_row():
    stage = UpperTitle()
    out = apply_stage(stage, table(["a", "boom", "c"]))
    assert stage.calls == [["0", "1", "2"], ["0"], ["1"], ["2"]]
    assert out.column("enriched_title").to_pylist() == ["A", None, "C"]
    assert out.column(S.QUARANTINE_REASON).to_pylist() == [None, "stage_error:ValueError", None]
    assert out.column(QUARANTINE_DETAIL).to_pylist()[1] == "cannot handle boom"


def test_timing_column_is_recorded_per_row():
    out = apply_stage(UpperTitle(), table(["a", "b"], quarantined={0}))
    timings = out.column("_t_enrich_title").to_pylist()
    assert timings[0] == 0.0 and timings[1] > 0.0


def test_a_stage_breaking_the_row_contract_quarantines_instead_of_corrupting():
    class Missing(UpperTitle):
        def process(self, batch):
            return StageResult({})

    out = apply_stage(Missing(), table(["a", "b"]))
    assert out.column("enriched_title").to_pylist() == [None, None]
    assert out.column(S.QUARANTINE_REASON).to_pylist() == ["stage_error:RuntimeError"] * 2


def test_the_stage_batch_context_is_held_around_the_whole_batch():
    import contextlib

    events = []

    class Held(UpperTitle):
        @contextlib.contextmanager
        def batch_context(self):
            events.append("enter")
            yield
            events.append("exit")

        def process(self, batch):
            events.append("process")
            return super().process(batch)

    out = apply_stage(Held(), table(["a", "boom", "c"]))
    assert events == ["enter", "process", "process", "process", "process", "exit"]
    assert out.column("enriched_title").to_pylist() == ["A", None, "C"]


def test_a_store_that_cannot_serve_now_stops_the_shard_instead_of_quarantining_its_rows():
    """An S3 outage while fetching images quarantined every product it could not fetch as image_unreadable,
    committed, and the resume had nothing to do: good products lost for good."""
    stage = UpperTitle()
    with pytest.raises(storage.StorageUnavailable, match="timed out"):
        apply_stage(stage, table(["a", "outage", "c"]))
    assert stage.calls == [["0", "1", "2"]]  # not retried row by row, nothing to quarantine

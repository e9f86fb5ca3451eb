"""The driver's shard writer holds a bounded number of complete shards, and a write failure surfaces once."""
from __future__ import annotations

import threading
import time
import types

import pyarrow as pa
import pytest

from augment.core import schema as S
from augment import writer as W
from augment.plan import ShardSpec


def shard_rows(shard_id: str, n: int = 2) -> pa.Table:
    return pa.table({S.SHARD_ID: [shard_id] * n, S.SOURCE_ROW: list(range(n))})


def make_writer(monkeypatch, write, shards: int, threads: int = 2) -> W.ShardWriter:
    specs = [ShardSpec(f"s{i}", "in", "in", 0, 2) for i in range(shards)]
    monkeypatch.setattr(W, "write_shard", write)
    return W.ShardWriter(types.SimpleNamespace(pending=specs), context=None, codec="zstd", threads=threads)


def test_complete_shards_waiting_for_a_writer_thread_are_bounded(monkeypatch):
    waiting, peak, lock = [0], [0], threading.Lock()

    def slow_write(spec, table, plan, context, codec):
        time.sleep(0.05)  # storage slower than the stages
        with lock:
            waiting[0] -= 1
        return spec.shard_id

    writer = make_writer(monkeypatch, slow_write, shards=20, threads=2)
    for i in range(20):
        with lock:
            waiting[0] += 1
            peak[0] = max(peak[0], waiting[0])
        writer.add(shard_rows(f"s{i}"))
    assert sorted(writer.close()) == sorted(f"s{i}" for i in range(20))
    assert peak[0] <= 2 * 2 + 1  # the queue cap, plus the shard being handed over


def test_a_failed_write_is_raised_once_and_later_shards_still_commit(monkeypatch):
    def write(spec, table, plan, context, codec):
        if spec.shard_id == "s0":
            time.sleep(0.05)  # fails while the driver has moved on
            raise W.ShardWriteError("/out/data/s0.parquet", OSError(28, "No space left on device"))
        return spec.shard_id

    writer = make_writer(monkeypatch, write, shards=3, threads=1)
    writer.add(shard_rows("s0"))
    time.sleep(0.3)
    with pytest.raises(W.ShardWriteError, match="cannot write shard file /out/data/s0.parquet: No space left"):
        writer.add(shard_rows("s1"))
    assert writer.close(require_all=False) == ["s1"]  # no second raise of the same failure


@pytest.mark.parametrize("rows, message", [
    ([0, 0, 1, 1], "came back twice: 0, 1; missing: 2, 3"),
    ([0, 1, 2, 9], "missing: 3; not its own: 9"),
])
def test_a_shard_whose_rows_add_up_but_are_not_its_own_is_never_committed(tmp_path, rows, message):
    """The row count is not enough: a row delivered twice must not stand in for one that never came back."""
    spec = ShardSpec("s0", "in", "in", 0, 4)
    table = pa.table({S.SHARD_ID: ["s0"] * 4, S.SOURCE_ROW: rows})
    plan = types.SimpleNamespace(run_uri=str(tmp_path))
    with pytest.raises(W.IncompleteShards, match=f"^shard s0: rows 0..3 expected once each; {message}$"):
        W.write_shard(spec, table, plan, context=None)
    assert list(tmp_path.iterdir()) == []  # nothing written, nothing committed

"""S3 input and output against a real S3 HTTP endpoint (moto's server) on 127.0.0.1."""
from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from augment import config as C
from augment.core import manifest
from augment import plan as P, runner
from augment.core import schema as S
from testkit.s3 import moto_s3
from tests.conftest import join_head

pytestmark = pytest.mark.slow
BUCKET = "catalogue"


@pytest.fixture(scope="module")
def s3(ray_head):
    with moto_s3(BUCKET) as client:
        # Ray workers take credentials from the standard chain of the environment they start in: the run starts
        # a local Ray of its own, whose workers see this endpoint and these test credentials. Afterwards this
        # process joins the session's head again: the tests after this file would otherwise each start a Ray.
        import ray

        ray.shutdown()
        yield client
        ray.shutdown()
        join_head(ray_head)


def test_s3_input_and_output(s3, sample_path, tmp_path):
    # A CSV on S3 naming images by relative keys, the images beside it.
    table = pq.read_table(sample_path).slice(0, 12)
    lines = ["product_id,title,image,brand"]
    for row in table.to_pylist():
        key = f"images/{row['product_id']}.jpg"
        s3.put_object(Bucket=BUCKET, Key=f"in/{key}", Body=row["image"])
        lines.append(f"{row['product_id']},\"{row['title']}\",{key},{row['brand'] or ''}")
    s3.put_object(Bucket=BUCKET, Key="in/products.csv", Body=("\n".join(lines) + "\n").encode())
    config = C.load()
    config.run.shard_size = 5
    config.run.progress = False
    # The worker processes read credentials from the same standard chain (environment here).
    plan = P.plan_run(f"s3://{BUCKET}/in/products.csv", f"s3://{BUCKET}/runs/r1", config)
    result = runner.execute(plan, config, use_ray=True)
    assert sum(r.rows_in for r in result.records) == 12
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="runs/r1/")["Contents"]}
    assert "runs/r1/_manifest.jsonl" in keys
    assert len([k for k in keys if k.startswith("runs/r1/data/")]) == 3
    records = manifest.load(f"s3://{BUCKET}/runs/r1")
    assert sum(r.rows_out for r in records.values()) == 12
    import pyarrow.dataset as pads
    from augment.core import storage

    fs, path = storage.filesystem(f"s3://{BUCKET}/runs/r1/data")
    rows = pads.dataset(path, filesystem=fs).to_table(columns=["product_id", "variants"]).to_pylist()
    assert sorted(r["product_id"] for r in rows) == sorted(table.column("product_id").to_pylist())
    assert all(len(r["variants"]) >= len(S.VARIANT_KINDS) for r in rows)
    # A run folder inside this one is refused: its readers would take that run's files for their own.
    assert manifest.enclosing_run(f"s3://{BUCKET}/runs/r1/data/nested") == f"s3://{BUCKET}/runs/r1"
    assert manifest.enclosing_run(f"s3://{BUCKET}/runs/r2") is None
    # A rerun against S3 resumes: nothing pending.
    assert P.plan_run(f"s3://{BUCKET}/in/products.csv", f"s3://{BUCKET}/runs/r1", config).pending == []
    # A shard whose data file is lost after the run was consolidated is redone, and its new record replaces the
    # folded line: totals and readers see the redone shard, and the next plan has nothing left to do.
    lost = sorted(records.values(), key=lambda r: r.row_start)[0]
    s3.delete_object(Bucket=BUCKET, Key=f"runs/r1/{lost.data_file}")
    again = P.plan_run(f"s3://{BUCKET}/in/products.csv", f"s3://{BUCKET}/runs/r1", config)
    assert [s.shard_id for s in again.pending] == [lost.shard_id]
    runner.execute(again, config, use_ray=False)
    redone = manifest.load(f"s3://{BUCKET}/runs/r1")[lost.shard_id]
    assert redone.committed_at > lost.committed_at and redone.rows_out == lost.rows_out
    folded = s3.get_object(Bucket=BUCKET, Key="runs/r1/_manifest.jsonl")["Body"].read().decode()
    assert folded.count(f'"shard_id": "{lost.shard_id}"') == 1
    assert P.plan_run(f"s3://{BUCKET}/in/products.csv", f"s3://{BUCKET}/runs/r1", config).pending == []
    # A data file whose bytes changed but not its size: only a resume that verifies checksums redoes it.
    key = f"runs/r1/{redone.data_file}"
    body = bytearray(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0xFF
    s3.put_object(Bucket=BUCKET, Key=key, Body=bytes(body))
    run = f"s3://{BUCKET}/runs/r1"
    assert P.plan_run(f"s3://{BUCKET}/in/products.csv", run, config).pending == []
    assert list(manifest.lost_files(run, manifest.load(run).values(), verify=True)) == [redone.shard_id]
    verified = P.plan_run(f"s3://{BUCKET}/in/products.csv", run, config, verify=True)
    assert [s.shard_id for s in verified.pending] == [redone.shard_id]
    runner.execute(verified, config, use_ray=False)
    # A run that ended after its last commit, before folding its records (or whose _manifest.jsonl was deleted):
    # the resume has no shard to do, and folds them then.
    s3.delete_object(Bucket=BUCKET, Key="runs/r1/_manifest.jsonl")
    again = P.plan_run(f"s3://{BUCKET}/in/products.csv", run, config)
    assert again.pending == [] and runner.execute(again, config, use_ray=False).records == []
    folded = s3.get_object(Bucket=BUCKET, Key="runs/r1/_manifest.jsonl")["Body"].read().decode()
    assert len(folded.splitlines()) == 3


def test_a_run_record_is_created_once_on_s3(s3):
    """Two runs started at once on one new S3 folder each wrote their own _run.json (the last stood) and committed
    records of two run ids: a conditional PUT lets one make it."""
    from augment.core import storage

    uri = f"s3://{BUCKET}/runs/race/_run.json"
    assert storage.create_exclusive(uri, b"first") is True
    assert storage.create_exclusive(uri, b"second") is False
    assert storage.read_bytes(uri) == b"first"


def test_two_writers_of_one_s3_folder_take_turns_and_a_crashed_holders_lock_is_taken_over(s3, monkeypatch, caplog):
    """Two reports of one S3 run at once each removed the other's pages and thumbnails: on S3 the lock was none."""
    import logging
    import threading
    import time

    from augment.core import storage

    folder = f"s3://{BUCKET}/runs/locked/report"
    monkeypatch.setattr(storage, "LEASE_POLL_SECONDS", 0.05)
    events = []

    def write(name):
        with storage.exclusive(folder):
            events.append(f"{name} in")
            time.sleep(0.3)
            events.append(f"{name} out")

    writers = [threading.Thread(target=write, args=(name,)) for name in ("a", "b")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert [e.split()[1] for e in events] == ["in", "out", "in", "out"] and events[0][0] == events[1][0]
    assert not storage.exists(f"{folder}/.lock")  # released
    storage.write_atomic(f"{folder}/.lock", b"a holder that crashed")
    monkeypatch.setattr(storage, "LEASE_SECONDS", 0.5)
    time.sleep(1.0)
    with caplog.at_level(logging.WARNING), storage.exclusive(folder):
        assert storage.read_bytes(f"{folder}/.lock") != b"a holder that crashed"
    assert "taking over a lock unchanged for" in caplog.text

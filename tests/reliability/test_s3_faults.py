"""Object storage misbehaves: a proxy in front of a real S3 endpoint (moto's server on 127.0.0.1) answers
503 SlowDown and resets connections, before and after the endpoint acted. Reads and writes are retried by the
AWS SDK's standard retry strategy; the run completes; each shard is committed exactly once."""
from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter

import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from augment import config as C
from augment.core import manifest, storage
from augment import plan as P, runner
from augment.core import schema as S
from tests.reliability.helpers import SAMPLE, deterministic_rows
from tests.reliability.s3_proxy import FaultProxy

pytestmark = pytest.mark.slow
BUCKET = "catalogue"
PRODUCTS, SHARD_SIZE = 8, 4
IDEMPOTENT = ("GET", "HEAD", "PUT", "DELETE")


class FirstAttemptFaults:
    """Two first attempts in five of each method fail, in turn: 503 SlowDown, a reset before the endpoint saw the
    request, (pass), a reset after it acted (idempotent requests; a reset before, for the others), (pass). Counted
    per method, so that every kind of fault meets reads and writes whatever the request targets are (multipart
    upload ids are random). Each fault costs about a second of the SDK's backoff."""
    CYCLE = ("slowdown", "reset", None, "reset_after", None)

    def __init__(self):
        self._first_attempts: Counter = Counter()
        self._lock = threading.Lock()

    def __call__(self, method: str, target: str, attempt: int) -> str | None:
        if attempt > 1:
            return None
        with self._lock:
            turn = self._first_attempts[method]
            self._first_attempts[method] += 1
        fault = self.CYCLE[turn % len(self.CYCLE)]
        return "reset" if fault == "reset_after" and method not in IDEMPOTENT else fault


@pytest.fixture(scope="module")
def moto_endpoint():
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    yield server.get_host_and_port()
    server.stop()


def catalogue_csv(rows, image_prefix: str) -> bytes:
    lines = ["product_id,title,image,brand"]
    for row in rows:
        lines.append(f"{row['product_id']},\"{row['title']}\",{image_prefix}{row['product_id']}.jpg,{row['brand'] or ''}")
    return ("\n".join(lines) + "\n").encode()


def test_run_through_a_faulty_s3_completes_with_each_shard_committed_once(moto_endpoint, tmp_path, monkeypatch):
    boto3 = pytest.importorskip("boto3")
    host, port = moto_endpoint
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    direct = boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1")
    direct.create_bucket(Bucket=BUCKET)
    rows = pq.read_table(SAMPLE).slice(0, PRODUCTS).to_pylist()
    for row in rows:
        direct.put_object(Bucket=BUCKET, Key=f"in/images/{row['product_id']}.jpg", Body=row["image"])
    direct.put_object(Bucket=BUCKET, Key="in/products.csv", Body=catalogue_csv(rows, "images/"))
    config = C.load(overrides={"run": {"shard_size": SHARD_SIZE, "progress": False}})

    with FaultProxy((host, port), FirstAttemptFaults()) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        run_uri = f"s3://{BUCKET}/runs/faulty"
        plan = P.plan_run(f"s3://{BUCKET}/in/products.csv", run_uri, config)
        result = runner.execute(plan, config, use_ray=False)
        # faults of every kind hit both reads and writes, and each faulted request was retried until it passed
        faults = proxy.faults()
        for kind in ("slowdown", "reset", "reset_after"):
            assert faults[("GET", kind)] + faults[("HEAD", kind)] > 0, (kind, faults)  # reads
        # writes (pyarrow uploads every object as a multipart upload: POST, PUT part, POST complete)
        assert faults[("PUT", "slowdown")] + faults[("POST", "slowdown")] > 0, faults
        assert faults[("PUT", "reset")] + faults[("PUT", "reset_after")] + faults[("POST", "reset")] > 0, faults
        faulted = {(m, t) for m, t, _, fate, _ in proxy.log if fate != "pass"}
        passed = {(m, t) for m, t, _, fate, status in proxy.log if fate == "pass" and status is not None}
        assert faulted <= passed
        assert len(result.records) == len(plan.shards) == PRODUCTS // SHARD_SIZE

    # Checked straight against the endpoint, without the proxy:
    objects = {o["Key"] for o in direct.list_objects_v2(Bucket=BUCKET, Prefix="runs/faulty/")["Contents"]}
    shard_ids = sorted(s.shard_id for s in plan.shards)
    assert sorted(k.split("/")[-1][:-5] for k in objects if "/_manifest.d/" in k) == shard_ids
    assert sorted(k.split("/")[-1][:-8] for k in objects if "/data/" in k) == shard_ids
    assert not [k for k in objects if "/quarantine/" in k]
    lines = direct.get_object(Bucket=BUCKET, Key="runs/faulty/_manifest.jsonl")["Body"].read().decode().splitlines()
    records = [json.loads(line) for line in lines]
    assert Counter(r["shard_id"] for r in records) == Counter(shard_ids)  # committed exactly once each
    assert sum(r["rows_out"] for r in records) == PRODUCTS
    for record in records:
        body = direct.get_object(Bucket=BUCKET, Key=f"runs/faulty/{record['data_file']}")["Body"].read()
        assert hashlib.sha256(body).hexdigest() == record["checksum"]

    # The same catalogue run locally, without faults, gives the same rows.
    local = tmp_path / "in"
    (local / "images").mkdir(parents=True)
    for row in rows:
        (local / "images" / f"{row['product_id']}.jpg").write_bytes(row["image"])
    (local / "products.csv").write_bytes(catalogue_csv(rows, "images/"))
    clean = tmp_path / "clean"
    runner.execute(P.plan_run(str(local / "products.csv"), str(clean), config), config, use_ray=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
    fs, path = storage.filesystem(f"{run_uri}/data")
    faulty_rows = pads.dataset(path, filesystem=fs).to_table(columns=list(S.DETERMINISTIC_COLUMNS)).to_pylist()
    assert sorted(faulty_rows, key=lambda r: r["product_id"]) == deterministic_rows(clean)
    assert manifest.load(run_uri).keys() == set(shard_ids)


def test_a_small_object_is_one_put_and_a_write_to_a_missing_bucket_still_fails(moto_endpoint, monkeypatch):
    """Commit records, cache entries and variant images are small: one PutObject each, not the three requests of a
    multipart upload; with the open delayed, a bucket that does not exist fails the write when it closes."""
    boto3 = pytest.importorskip("boto3")
    host, port = moto_endpoint
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1").create_bucket(Bucket="small")
    requests: Counter = Counter()

    def count(method: str, target: str, attempt: int) -> None:
        requests[method] += 1

    with FaultProxy((host, port), count) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        storage._s3_filesystem.cache_clear()
        storage.write_atomic("s3://small/r1/_manifest.d/s1.json", b'{"shard_id": "s1"}')
        assert dict(requests) == {"PUT": 1}
        assert storage.read_text("s3://small/r1/_manifest.d/s1.json") == '{"shard_id": "s1"}'
        with pytest.raises(OSError):
            storage.write_atomic("s3://no-such-bucket/r1/x.json", b"{}")
    storage._s3_filesystem.cache_clear()

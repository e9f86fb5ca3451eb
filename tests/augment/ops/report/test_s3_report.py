"""The report of a run on S3 is written into the run's prefix, with content types that let a bucket serve it."""
from __future__ import annotations

import pytest

from augment.ops.report import build
from tests.augment.ops.report.synthetic_run import build_run
from testkit.s3 import moto_s3

pytestmark = pytest.mark.slow
BUCKET = "runs"


@pytest.fixture(scope="module")
def s3():
    with moto_s3(BUCKET) as client:
        yield client


def test_report_of_an_s3_run_is_written_beside_its_shards(s3, tmp_path):
    build_run(tmp_path, products=6, shard_size=3, quarantine={"empty_title": 1})
    for path in tmp_path.rglob("*"):
        if path.is_file():
            s3.put_object(Bucket=BUCKET, Key=f"r1/{path.relative_to(tmp_path)}", Body=path.read_bytes())
    index = build.write_report(f"s3://{BUCKET}/r1", page_size=4)
    build.write_report(str(tmp_path), page_size=4)  # the same run, locally, for comparison
    local_thumbs = {p.name for p in (tmp_path / "report" / "img").iterdir()}
    assert index == f"s3://{BUCKET}/r1/report/index.html"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="r1/report/")["Contents"]}
    assert {"r1/report/index.html", "r1/report/gallery-001.html", "r1/report/gallery-002.html",
            "r1/report/style.css"} <= keys
    thumbs = [k for k in keys if k.startswith("r1/report/img/")]
    assert {k.rsplit("/", 1)[1] for k in thumbs} == local_thumbs
    assert s3.head_object(Bucket=BUCKET, Key="r1/report/index.html")["ContentType"] == "text/html; charset=utf-8"
    assert s3.head_object(Bucket=BUCKET, Key=thumbs[0])["ContentType"] == "image/jpeg"

"""The report of a run on S3 is written into the run's prefix, with content types that let a bucket serve it."""
from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from augment.ops.report import build
from augment.orchestrate import tasks
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


def test_the_stacks_run_report_link_opens_the_page_minio_serves(s3, tmp_path, monkeypatch):
    """docker/compose.yaml: airflow-init's bucket set-up, run against a real S3 endpoint, lets the reports (and only
    them) be read; the link the DAG shows (MOON_REPORT_URL) serves the page and its thumbnails over HTTP."""
    compose = yaml.safe_load((Path(__file__).parents[4] / "docker" / "compose.yaml").read_text())
    init = compose["services"]["airflow-init"]["command"][2].split("&&")[-1]
    program, flag, code = shlex.split(init)
    assert (program, flag) == ("python", "-c")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)  # a restarted stack runs it again
    runs_root = compose["services"]["airflow-scheduler"]["environment"]["MOON_RUNS_ROOT"]
    bucket, _, prefix = runs_root.removeprefix("s3://").partition("/")
    statement, = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]
    assert statement["Action"] in (["s3:GetObject"], "s3:GetObject")
    readable = [r.removeprefix("arn:aws:s3:::") for r in statement["Resource"]]
    run = f"{bucket}/{prefix}/manual__2026-01-01T00:00:00+00:00"
    for key, public in ((f"{run}/report/index.html", True), (f"{run}/report/img/a-320.jpg", True),
                        (f"{run}/data/s1.parquet", False), (f"{run}/_manifest.jsonl", False),
                        (f"{run}/quarantine/s1.parquet", False)):
        assert any(fnmatch.fnmatchcase(key, pattern) for pattern in readable) == public, key

    build_run(tmp_path, products=6, shard_size=3)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            s3.put_object(Bucket=bucket, Key=f"{run.partition('/')[2]}/{path.relative_to(tmp_path)}",
                          Body=path.read_bytes())
    build.write_report(f"s3://{run}", page_size=4)
    endpoint = s3.meta.endpoint_url
    served = compose["services"]["airflow-scheduler"]["environment"]["MOON_REPORT_URL"]
    assert served == "http://${MOON_BIND_ADDRESS:-127.0.0.1}:9000"  # MinIO's published API port
    monkeypatch.setenv(tasks.REPORT_URL_ENV, endpoint)
    url = tasks.report_url(f"s3://{run}")
    with urllib.request.urlopen(url, timeout=30) as page:  # unsigned, as a browser asks
        assert page.headers["Content-Type"] == "text/html; charset=utf-8"
        html = page.read().decode()
    thumb = re.search(r'src="(img/[^"]+)"', html).group(1)
    with urllib.request.urlopen(urllib.parse.urljoin(url, thumb), timeout=30) as image:
        assert image.headers["Content-Type"] == "image/jpeg" and image.read(3) == b"\xff\xd8\xff"

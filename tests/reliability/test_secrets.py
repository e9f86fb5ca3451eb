"""Planted credentials never reach the run's outputs or logs.

A real `moon -v run` (debug logging, local Ray) reads a catalogue, writes to S3 (moto's server on 127.0.0.1) with
credentials from the standard AWS environment variables, and enriches titles through an OpenAI-compatible server
with an API key from MOON_LLM_API_KEY. Then every object the run wrote, every Ray log file and the captured
output are searched for the planted values.
"""
from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.reliability.helpers import SAMPLE, moon
from tests.reliability.model_faults import serve

pytestmark = pytest.mark.slow
BUCKET = "secret-test"


@pytest.fixture
def ray_tmp():
    # Ray's session folder holds Unix sockets: keep its path short.
    folder = tempfile.mkdtemp(prefix="mr", dir="/tmp")
    yield Path(folder)
    shutil.rmtree(folder, ignore_errors=True)


def test_planted_secrets_appear_in_no_output_and_no_log(tmp_path, ray_tmp):
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    secrets = {
        "AWS_ACCESS_KEY_ID": f"AKIAPLANTED{uuid.uuid4().hex[:9].upper()}",
        "AWS_SECRET_ACCESS_KEY": f"planted/aws+secret{uuid.uuid4().hex}",
        "AWS_SESSION_TOKEN": f"planted-session-{uuid.uuid4().hex}",
        "MOON_LLM_API_KEY": f"sk-planted-{uuid.uuid4().hex}",
    }
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
        s3.create_bucket(Bucket=BUCKET)
        titles = pq.read_table(SAMPLE, columns=["title"]).column("title").to_pylist()[:8]
        model_server, _ = serve({t: "healthy" for t in titles})
        with model_server:
            config = tmp_path / "config.yaml"
            config.write_text(
                "extends: local\nstages:\n  enrich_title:\n    backend: openai\n    options:\n"
                f"      base_url: {model_server.base_url}\n      model: stub-vlm\n      api_key_env: MOON_LLM_API_KEY\n"
                "  image_variants:\n    enabled: false\n  filter:\n    enabled: false\n"
            )
            env = {**secrets, "AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1", "RAY_TMPDIR": str(ray_tmp)}
            proc = moon("-v", "run", "--input", str(SAMPLE), "--limit", "8", "--shard-size", "4", "--config",
                        str(config), "--output", f"s3://{BUCKET}/run", "--no-progress", env=env)
            shown = moon("config", "--config", str(config), env=env)
        assert proc.returncode == 0, proc.stderr
        # the key was used (as a bearer token), and the run wrote through the credential chain
        assert model_server.auth == [f"Bearer {secrets['MOON_LLM_API_KEY']}"] * 8
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
        assert any(k.startswith("run/data/") for k in keys) and "run/_manifest.jsonl" in keys

        places: dict[str, bytes] = {"stdout": proc.stdout.encode(), "stderr": proc.stderr.encode(),
                                    "moon config": shown.stdout.encode()}
        for key in keys:
            places[f"s3://{BUCKET}/{key}"] = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        logs = [p for p in ray_tmp.rglob("*") if p.is_file() and not p.is_socket()]
        assert any(p.suffix in (".log", ".out", ".err") for p in logs)  # Ray's logs are among the places searched
        for path in logs:
            places[str(path)] = path.read_bytes()
        assert " DEBUG moon: config " in proc.stderr and " DEBUG augment.core.storage: wrote s3://" in proc.stderr
        leaks = [(name, where) for name, value in secrets.items() for where, data in places.items()
                 if value.encode() in data]
        assert leaks == []
    finally:
        server.stop()

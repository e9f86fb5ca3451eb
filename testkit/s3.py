"""A real S3 endpoint for tests: moto's server on 127.0.0.1, reached through the standard AWS chain."""
from __future__ import annotations

import contextlib
import urllib.request


@contextlib.contextmanager
def moto_s3(*buckets: str):
    """A real S3 HTTP endpoint (moto's server) on 127.0.0.1 with `buckets`, and the AWS environment pointing at it
    (test credentials through the standard chain). Yields a boto3 client. Skips the test without moto or boto3."""
    import pytest

    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto keeps its buckets in process-wide memory that outlives a server: start every endpoint empty, so no
    # test sees objects an earlier test left under the same bucket and key.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=30).close()
    patch = pytest.MonkeyPatch()
    for key, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}.items():
        patch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    for bucket in buckets:
        client.create_bucket(Bucket=bucket)
    try:
        yield client
    finally:
        patch.undo()
        server.stop()

"""Shared fixtures: environment for fast, offline, deterministic tests; small real catalogues built in code."""
from __future__ import annotations

import contextlib
import io
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

SAMPLE = os.path.join(os.path.dirname(__file__), "..", "augment", "sample", "myntra_sample.parquet")


def product_photo(width: int = 96, height: int = 128, colour=(200, 40, 40), fmt: str = "JPEG", mode: str = "RGB") -> bytes:
    """A studio-style product photo: a coloured garment shape with a logo patch on a light grey background."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (236, 236, 236))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle([width * 0.2, height * 0.15, width * 0.8, height * 0.9], radius=6, fill=colour)
    draw.rectangle([width * 0.4, height * 0.3, width * 0.6, height * 0.42], fill=(250, 250, 250))
    draw.line([width * 0.42, height * 0.36, width * 0.58, height * 0.36], fill=(10, 10, 10), width=2)
    if mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@contextlib.contextmanager
def moto_s3(*buckets: str):
    """A real S3 HTTP endpoint (moto's server) on 127.0.0.1 with `buckets`, and the AWS environment pointing at it
    (test credentials through the standard chain). Yields a boto3 client."""
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
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


@pytest.fixture(scope="session")
def sample_path() -> str:
    return os.path.abspath(SAMPLE)


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the whole session (ray.init costs seconds)."""
    ray = pytest.importorskip("ray")
    from augment.config import load
    from augment.runner import init_ray

    if not ray.is_initialized():
        config = load(check_stages=False)
        config.run.num_cpus = 2
        init_ray(config)
    yield ray
    ray.shutdown()


# Airflow home and Ray head for tests/dags and tests/augment/orchestrate (sets AIRFLOW_HOME before Airflow loads).
from tests.orchestration_fixtures import airflow_db, ray_client, ray_head  # noqa: E402,F401

"""Shared fixtures: environment for fast, offline, deterministic tests. What tests build (photos, tiny models,
servers) is in testkit/."""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

SAMPLE = os.path.join(os.path.dirname(__file__), "..", "augment", "sample", "myntra_sample.parquet")


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

"""Fixtures for the orchestration tests: a private Airflow home (SQLite) and a real local Ray head.

Airflow reads its configuration when first imported, so the environment is set when this module is imported
(from tests/conftest.py), before any test module imports Airflow. The Airflow home is always a fresh temp dir:
a developer's own AIRFLOW_HOME is never touched. The Ray head runs on free ports with its own token and temp
dir and is stopped by process group at the end of the session; nothing else on the machine is signalled.
"""
from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DAGS = ROOT / "dags"

AIRFLOW_HOME = tempfile.mkdtemp(prefix="moon-airflow-test-")
atexit.register(shutil.rmtree, AIRFLOW_HOME, True)
os.environ.update({
    "AIRFLOW_HOME": AIRFLOW_HOME,
    "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
})


# The session's Ray head authenticates with this token. Ray reads its authentication settings once, when this
# process first loads it: they are set here, before any test does, so that this process can join the head
# (tests/conftest.py: ray_local). Ray started by a child process of the tests uses the same token.
RAY_TOKEN = secrets.token_hex(24)
os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": RAY_TOKEN})


def airflow_available() -> bool:
    from importlib.util import find_spec

    return find_spec("airflow") is not None and find_spec("airflow.sdk") is not None


@pytest.fixture(scope="session")
def airflow_db():
    """The metadata database of the private Airflow home, migrated once per session."""
    if not airflow_available():
        pytest.skip("apache-airflow is not installed (extra: airflow)")
    from airflow.utils import db

    db.initdb()
    return AIRFLOW_HOME


@pytest.fixture(scope="session")
def ray_head():
    """A real Ray head (`ray start --head`) with the Jobs API and token auth; its connection as ray_default."""
    from importlib.util import find_spec

    if find_spec("ray") is None or find_spec("ray.dashboard") is None:
        pytest.skip("ray[default] is not installed")
    from augment.dev.local_stack import RayHead

    head = RayHead(num_cpus=2, token=RAY_TOKEN).start()
    previous = os.environ.get("AIRFLOW_CONN_RAY_DEFAULT")
    os.environ["AIRFLOW_CONN_RAY_DEFAULT"] = json.dumps(head.connection())
    try:
        yield head
    finally:
        if previous is None:
            os.environ.pop("AIRFLOW_CONN_RAY_DEFAULT", None)
        else:
            os.environ["AIRFLOW_CONN_RAY_DEFAULT"] = previous
        head.stop()
        shutil.rmtree(head.temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_client(ray_head):
    """A JobSubmissionClient of the test head, for inspecting what the code under test submitted."""
    from augment.orchestrate.ray_jobs import endpoint_from_connection, make_client
    from airflow.sdk import Connection

    conn = Connection(conn_id="ray_default", **{k: v for k, v in ray_head.connection().items() if k != "description"})
    return make_client(endpoint_from_connection(conn))

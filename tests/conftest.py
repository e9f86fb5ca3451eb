"""Shared fixtures: the environment of fast, offline, deterministic tests, and the expensive things built once per
session: one Ray (joined to the session's Ray head), one run of the bundled sample on Ray and one in this process.
What tests build (photos, tiny models, servers, the moon process) is in testkit/.

Tiers, chosen by markers (setup.cfg): unmarked tests run in this process in seconds (`make test-fast`); `slow`
ones start processes, Ray, servers or Airflow, or run the pipeline end to end; `external` ones need a service set
up outside the default tooling (the vLLM CPU venv, Chromium, airflow standalone); `orchestration` ones drive
Airflow DAGs, Ray jobs or Ray Train runs. `make test` runs them all, each tier in a pytest process of its own: the
`slow` one beside the unmarked one and then the service one (`external`, `gpu`, slow `orchestration`; testkit/tiers.py).
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Ray Train without the parts that watch long runs on a cluster (spot preemption, the state actor's
# reconciliation, Prometheus metrics), and checking on its workers every 0.5 s instead of 2 s: a tiny model's
# training run on 2 cores takes ~36 s instead of ~46 s (each is one more actor process, or a wait, per run).
os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
os.environ.setdefault("RAY_TRAIN_ENABLE_STATE_ACTOR_RECONCILIATION", "0")
os.environ.setdefault("RAY_TRAIN_METRICS_ENABLED", "0")
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# The sample as the runs below name it: relative to the checkout, so that shard ids and lineage (which hash and
# record the input's name) are the same wherever the checkout is, and the shards can be compared with content
# recorded once (tests/augment/test_sample_identity.py).
SAMPLE = "augment/sample/myntra_sample.parquet"
FIXED_RUN_ID = "run-sample"
FIXED_CODE_VERSION = "0.1.0+sample"


SESSION_RUNS = {"sample_run", "sample_run_in_process"}


def _file_rank(items) -> dict[str, int]:
    """0 for a test file with an `external` test, 1 with a `slow` one, 2 for an in-process file."""
    rank: dict[str, int] = {}
    for item in items:
        mine = 0 if item.get_closest_marker("external") else 1 if item.get_closest_marker("slow") else 2
        rank[item.location[0]] = min(rank.get(item.location[0], 2), mine)
    return rank


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`make test TEST_WORKERS=N` runs `--dist loadgroup`), each test file is one unit of work, so that its
    module fixtures are built once, and the files that read the session's sample runs are one unit, so that one
    worker builds them. Units are handed out in collection order: the files that start servers and processes go
    first, so that the run does not end with one long file left for one worker. A run without workers keeps
    pytest's order."""
    if not getattr(config.option, "numprocesses", None):
        return
    rank = _file_rank(items)
    items.sort(key=lambda item: rank[item.location[0]])  # a stable sort: the file order stays within a rank
    if getattr(config.option, "dist", None) == "loadgroup":
        shared = {item.location[0] for item in items if SESSION_RUNS & set(getattr(item, "fixturenames", ()))}
        for item in items:
            if item.get_closest_marker("xdist_group") is None:
                group = "sample-runs" if item.location[0] in shared else item.location[0]
                item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def sample_path() -> str:
    return str(ROOT / SAMPLE)


def join_head(ray_head):
    """Connect this process to the session's Ray head, unless it is connected already."""
    import logging

    import ray

    if not ray.is_initialized():
        # The head's token is in the environment (orchestration_fixtures). Workers' output stays in the head's log
        # files: forwarded to this process it would arrive whenever Ray flushes it, inside a later test's output.
        ray.init(address=ray_head.address, logging_level=logging.WARNING, log_to_driver=False)
    return ray


@pytest.fixture(scope="session")
def ray_local(ray_head):
    """This process joined to the session's Ray head (tests/orchestration_fixtures.py): one Ray per session. A test
    that needs a Ray of its own shuts this connection down and joins the head again when it ends (test_s3.py)."""
    pytest.importorskip("ray")
    yield join_head(ray_head)
    import ray

    ray.shutdown()


@dataclasses.dataclass
class SampleRun:
    out: Path  # the run folder
    plan: object  # augment.plan.Plan
    result: object  # augment.runner.RunResult


def run_sample(out: Path, use_ray: bool) -> SampleRun:
    """The bundled sample through every stage of the default profile, from the checkout, with a fixed run id and
    code version: every rerun on one machine writes the same bytes, and every machine the same content (a CPU's
    instruction sets may move a few pixels by a grey level: tests/augment/test_sample_identity.py)."""
    from augment import config as C
    from augment import plan as P
    from augment import runner

    config = C.load()
    config.run.progress = False
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)
        patch.setattr(runner, "code_version", lambda: FIXED_CODE_VERSION)
        P.plan_run(SAMPLE, str(out), config)  # creates the run folder and its _run.json
        run_file = out / "_run.json"
        run_file.write_text(json.dumps(json.loads(run_file.read_text()) | {"run_id": FIXED_RUN_ID}))
        plan = P.plan_run(SAMPLE, str(out), config)  # resumes the folder: its run id is the fixed one
        assert plan.run_id == FIXED_RUN_ID
        result = runner.execute(plan, config, use_ray=use_ray, progress=False)
    return SampleRun(out, plan, result)


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory, ray_local) -> SampleRun:
    """The sample run on Ray (the session's), once per session. Tests read it; none may change it."""
    return run_sample(tmp_path_factory.mktemp("sample-ray") / "run", use_ray=True)


@pytest.fixture(scope="session")
def sample_run_in_process(tmp_path_factory) -> SampleRun:
    """The sample run in this process (runner.run_in_process), once per session. Tests read it; none may change
    its shards (the report may be written beside them)."""
    return run_sample(tmp_path_factory.mktemp("sample-local") / "run", use_ray=False)


# Airflow home and Ray head for tests/dags and tests/augment/orchestrate (sets AIRFLOW_HOME before Airflow loads).
from tests.orchestration_fixtures import airflow_db, ray_client, ray_head  # noqa: E402,F401

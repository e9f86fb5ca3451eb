"""moon_augment end to end with `dag.test()` against a real local Ray head: the bundled sample goes through.

One DAG run serves every test here (a run costs 1-2 min on 2 cores): the default profile with every stage,
two batches (two of the sample's three shards, then the third), and a fault injected into the first Ray job that
publishes a shard file (`MOON_FAULTS=after_data_write=1:exit`, counted across processes), so exactly one mapped
task fails once, after its shard's data file is written but before the shard is committed, and is retried.
"""
from __future__ import annotations

from datetime import timedelta

import pyarrow.dataset as pads
import pytest

from augment.core import manifest
from augment.orchestrate import submission
from tests.orchestration_fixtures import DAGS

pytestmark = [pytest.mark.slow, pytest.mark.orchestration]


@pytest.fixture(scope="module")
def dags(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag.dags


@pytest.fixture(scope="module")
def augment_run(dags, ray_head, tmp_path_factory, sample_path):
    base = tmp_path_factory.mktemp("moon_augment")
    dag = dags["moon_augment"]
    dag.task_dict["run_batch"].retry_delay = timedelta(seconds=1)  # the DAG's 30 s backoff, shortened for the test
    conf = {
        "input_uri": sample_path,
        "output_uri": str(base / "runs" / "{run_id}"),
        "shards_per_task": 2,  # every stage of the default (local) profile
        "env_vars": {"MOON_FAULTS": "after_data_write=1:exit", "MOON_FAULTS_STATE": str(base / "faults")},
    }
    dag_run = dag.test(run_conf=conf)
    run_dir = next((base / "runs").iterdir())
    return dag_run, run_dir


def task_instances(dag_run):
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = dag_run.get_task_instances(session=session)
        return [(ti.task_id, ti.map_index, ti.try_number, ti.state) for ti in tis]


def test_the_run_succeeds_with_every_task_successful(augment_run):
    dag_run, _ = augment_run
    assert dag_run.state == "success"
    states = {(task_id, map_index): state for task_id, map_index, _, state in task_instances(dag_run)}
    assert states == {("plan", -1): "success", ("run_batch", 0): "success", ("run_batch", 1): "success",
                      ("validate", -1): "success", ("publish", -1): "success"}


def test_every_shard_of_the_sample_is_committed_once(augment_run, sample_path):
    _, run_dir = augment_run
    records = manifest.load(str(run_dir))
    assert len(records) == 3
    lines = (run_dir / manifest.MANIFEST).read_text().splitlines()
    assert len(lines) == 3  # no shard committed twice, despite the retried batch
    assert sorted(p.name for p in (run_dir / "data").glob("*.parquet")) == sorted(f"{s}.parquet" for s in records)


def test_rows_in_equal_rows_out_plus_quarantined(augment_run):
    _, run_dir = augment_run
    totals = manifest.totals(manifest.load(str(run_dir)).values())
    assert totals["rows_in"] == 80
    data_rows = pads.dataset(str(run_dir / "data"), format="parquet").count_rows()
    quarantined = pads.dataset(str(run_dir / "quarantine"), format="parquet").count_rows() \
        if (run_dir / "quarantine").exists() else 0
    assert data_rows == totals["rows_out"] and quarantined == totals["rows_quarantined"]
    assert data_rows + quarantined == 80


def test_exactly_one_batch_failed_once_and_was_retried(augment_run):
    dag_run, _ = augment_run
    tries = sorted(try_number for task_id, _, try_number, _ in task_instances(dag_run) if task_id == "run_batch")
    assert tries == [1, 2]


def test_one_ray_job_per_try_and_never_a_duplicate(augment_run, ray_client):
    dag_run, _ = augment_run
    jobs = [j for j in ray_client.list_jobs() if (j.metadata or {}).get("airflow_run_id") == dag_run.run_id]
    by_batch: dict[str, list[tuple[str, str]]] = {}
    for job in jobs:
        by_batch.setdefault(job.metadata["airflow_map_index"], []).append((job.submission_id, str(job.status)))
    retried = [i for i, tries in by_batch.items() if len(tries) == 2]
    assert len(jobs) == 3 and len(retried) == 1
    base = submission.base_id("moon_augment", dag_run.run_id, "run_batch", int(retried[0]))
    assert sorted(by_batch[retried[0]]) == [(f"{base}-try1", "FAILED"), (f"{base}-try2", "SUCCEEDED")]
    for index, tries in by_batch.items():
        if index != retried[0]:
            assert [status for _, status in tries] == ["SUCCEEDED"]


def test_each_job_ran_moon_run_on_its_own_batch_of_the_saved_plan(augment_run, ray_client):
    from augment import plan as P

    dag_run, run_dir = augment_run
    jobs = [j for j in ray_client.list_jobs() if (j.metadata or {}).get("airflow_run_id") == dag_run.run_id]
    batches = sorted(int(j.metadata["moon_batch"]) for j in jobs if str(j.status) == "SUCCEEDED")
    assert batches == [0, 1]
    assert all(f"--batch {j.metadata['moon_batch']} --shards-per-batch 2" in j.entrypoint for j in jobs)
    assert P.planned_shard_ids(str(run_dir)) == [r.shard_id for r in sorted(
        manifest.load(str(run_dir)).values(), key=lambda r: r.row_start)]


def test_publish_emits_one_asset_event_with_the_run_folder(augment_run):
    from sqlalchemy import select

    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    dag_run, run_dir = augment_run
    with create_session() as session:
        events = session.scalars(
            select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == "moon_augment_shards", AssetEvent.source_run_id == dag_run.run_id)
        ).all()
        extras = [dict(e.extra) for e in events]
    assert len(extras) == 1
    assert extras[0]["run_uri"] == str(run_dir)
    assert (extras[0]["rows_in"], extras[0]["shards"]) == (80, 3)
    assert extras[0]["report"] == str(run_dir / "report" / "index.html")


def test_the_asset_event_queues_a_moon_train_run(augment_run):
    from sqlalchemy import select

    from airflow.models.asset import AssetDagRunQueue, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        queued = session.scalars(
            select(AssetDagRunQueue.target_dag_id).join(AssetModel, AssetDagRunQueue.asset_id == AssetModel.id)
            .where(AssetModel.name == "moon_augment_shards")
        ).all()
    # What the scheduler turns into an asset-triggered moon_train run (seen live in test_airflow_ui.py).
    assert queued == ["moon_train"]


def test_publish_links_the_run_report(augment_run):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dag_run, run_dir = augment_run
    with create_session() as session:
        value = session.scalar(select(XComModel.value).where(
            XComModel.run_id == dag_run.run_id, XComModel.task_id == "publish", XComModel.key == "moon_report_url"))
    assert XComModel.deserialize_value(type("X", (), {"value": value})()) == (run_dir / "report" / "index.html").as_uri()


def test_moon_train_trains_on_the_published_run(augment_run, dags):
    pytest.importorskip("model.cli", reason="the trainer (model package) is not in this checkout yet")
    _, run_dir = augment_run
    # The tiny model for two epochs (a config file, as users pass one); the run comes from the asset event.
    config = run_dir.parent.parent / "tiny-2-epochs.json"
    config.write_text('{"extends": "tiny", "train": {"epochs": 2}}')
    train_run = dags["moon_train"].test(run_conf={"train_config": str(config)})
    assert train_run.state == "success"
    checkpoints = run_dir / "checkpoints"
    assert checkpoints.exists() and any(checkpoints.rglob("*"))

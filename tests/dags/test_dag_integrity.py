"""Every DAG file imports cleanly and fast, with the tasks, dependencies and settings ops rely on."""
from __future__ import annotations

import copy
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from augment.orchestrate import GPU_POOL
from tests.orchestration_fixtures import DAGS, ROOT

DAG_FILES = sorted(p.name for p in DAGS.glob("*.py"))


@pytest.fixture(scope="module")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    for stat in bag.dagbag_stats:
        print(f"parsed {stat.file} in {stat.duration.total_seconds() * 1000:.0f} ms: {stat.dags}")
    return bag


def test_every_dag_file_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert sorted(Path(s.file).name for s in dagbag.dagbag_stats) == DAG_FILES


def test_every_dag_file_parses_fast(dagbag):
    # Not a timing assertion on the machine's speed: a file that needs seconds imports something heavy, which
    # the next test pins down. The figures are printed above for the record.
    slow = [(s.file, s.duration) for s in dagbag.dagbag_stats if s.duration > timedelta(seconds=5)]
    assert slow == []


@pytest.mark.slow  # a child process
@pytest.mark.parametrize("name", DAG_FILES)
def test_dag_files_import_no_heavy_module_at_top_level(name):
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1]); "
        "print(','.join(sorted(m for m in ('ray', 'torch', 'pyarrow', 'spacy', 'transformers', 'diffusers', 'cv2') "
        "if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(DAGS / name)], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1:] in ([], [""])


def test_moon_augment_tasks_and_dependencies(dagbag):
    dag = dagbag.dags["moon_augment"]
    edges = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
    assert edges == {
        "plan": ["publish", "run_batch", "validate"],
        "run_batch": ["validate"],
        "validate": ["publish"],
        "publish": [],
    }


def test_moon_augment_fans_out_one_mapped_ray_job_per_batch(dagbag):
    from augment.orchestrate.operator import RayJobOperator

    run_batch = dagbag.dags["moon_augment"].task_dict["run_batch"]
    assert run_batch.is_mapped
    assert run_batch.operator_class is RayJobOperator or run_batch.operator_class.__name__ == "RayJobOperator"
    assert run_batch.pool == GPU_POOL
    assert run_batch.partial_kwargs["on_failure_callback"]


def test_validate_runs_when_there_was_nothing_left_to_do(dagbag):
    assert dagbag.dags["moon_augment"].task_dict["validate"].trigger_rule == "none_failed"


def test_moon_augment_retries_with_exponential_backoff(dagbag):
    run_batch = dagbag.dags["moon_augment"].task_dict["run_batch"]
    assert run_batch.retries == 2
    assert run_batch.retry_exponential_backoff == 2.0
    assert run_batch.max_retry_delay == timedelta(minutes=15)


def test_publish_emits_the_asset_moon_train_is_scheduled_on(dagbag):
    from augment.orchestrate.assets import MOON_SHARDS

    assert dagbag.dags["moon_augment"].task_dict["publish"].outlets == [MOON_SHARDS]
    train = dagbag.dags["moon_train"]
    assert list(train.timetable.asset_condition.objects) == [MOON_SHARDS]


def test_moon_train_tasks_and_dependencies(dagbag):
    dag = dagbag.dags["moon_train"]
    assert {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks} == {"pick_run": ["train"], "train": []}
    assert dag.task_dict["train"].pool == GPU_POOL


@pytest.mark.parametrize("dag_id", ["moon_augment", "moon_train"])
def test_dags_are_documented_and_tagged(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.doc_md and "moon" in dag.tags
    assert all(t.doc_md for t in dag.tasks), [t.task_id for t in dag.tasks if not t.doc_md]


def test_publish_and_run_batch_carry_their_extra_links(dagbag):
    dag = dagbag.dags["moon_augment"]
    assert [link.name for link in dag.task_dict["publish"].operator_extra_links] == ["Run report"]
    assert [link.name for link in dag.task_dict["run_batch"].operator_extra_links] == ["Ray job"]


def test_form_stages_are_the_pipeline_stages(dagbag):
    from augment.core.names import STAGE_ORDER

    schema = dagbag.dags["moon_augment"].params.get_param("stages").schema
    assert schema["items"]["enum"] == list(STAGE_ORDER)


def test_form_defaults_are_valid(dagbag):
    values = dagbag.dags["moon_augment"].params.validate()
    assert values["shards_per_task"] is None and values["ray_conn_id"] == "ray_default"
    assert values["max_tasks"] == 1024 and values["gpus"] is None


@pytest.mark.parametrize("field,value", [
    ("shards_per_task", 0),
    ("max_tasks", 0),
    ("gpus", 0),
    ("output_uri", "relative/run"),
    ("stages", ["telepathy"]),
    ("profile", "no-such-profile"),
    ("limit", -1),
    ("env_vars", {"A": 1}),
])
def test_form_rejects_bad_values_before_the_run_starts(dagbag, field, value):
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(dagbag.dags["moon_augment"].params)
    with pytest.raises(ParamValidationError):
        params[field] = value
        params.validate()


@pytest.mark.parametrize("field,value", [
    ("input_uri", "data/catalogue.parquet"),
    ("input_uri", "s3://"),
    ("output_uri", "s3:///runs/{run_id}"),
    ("config_file", "moon.yaml"),
    ("config_file", "s3://"),
])
def test_form_rejects_locations_a_ray_job_cannot_find(dagbag, field, value):
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(dagbag.dags["moon_augment"].params)
    with pytest.raises(ParamValidationError):
        params[field] = value
        params.validate()


@pytest.mark.parametrize("value", ["s3://moon/checkpoints/{run_id}", "checkpoints/{run_id}"])
def test_train_form_rejects_a_checkpoint_folder_moon_train_cannot_write(dagbag, value):
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(dagbag.dags["moon_train"].params)
    assert params.validate()["checkpoint_uri"] is None
    with pytest.raises(ParamValidationError):
        params["checkpoint_uri"] = value
        params.validate()


def _moon_augment_with(monkeypatch, **env):
    """The moon_augment DAG of its file run again with these MOON_* variables in the environment."""
    import runpy

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(DAGS / "moon_augment.py"))["moon_augment"]()


@pytest.mark.parametrize("value,jobs", [("", 8), ("abc", 8), ("0", 1), ("3", 3)])
def test_a_bad_jobs_per_run_neither_hides_the_dag_nor_stalls_its_runs(airflow_db, monkeypatch, value, jobs):
    dag = _moon_augment_with(monkeypatch, MOON_JOBS_PER_RUN=value)
    assert dag.task_dict["run_batch"].partial_kwargs["max_active_tis_per_dagrun"] == jobs


def test_driver_resources_reach_both_dags_ray_job_tasks(airflow_db, monkeypatch):
    import runpy

    dag = _moon_augment_with(monkeypatch, MOON_JOB_DRIVER_RESOURCES='{"CPU": 1, "moon_driver": 1}')
    batch = dag.task_dict["run_batch"].partial_kwargs
    assert (batch["entrypoint_num_cpus"], batch["entrypoint_resources"]) == (1.0, {"moon_driver": 1.0})
    train = runpy.run_path(str(DAGS / "moon_train.py"))["moon_train"]().task_dict["train"]
    assert (train.entrypoint_num_cpus, train.entrypoint_resources) == (1.0, {"moon_driver": 1.0})
    monkeypatch.delenv("MOON_JOB_DRIVER_RESOURCES")
    assert "entrypoint_resources" not in _moon_augment_with(monkeypatch).task_dict["run_batch"].partial_kwargs


@pytest.mark.parametrize("value,output", [("", "/tmp/moon-runs/{run_id}"), ("/data/runs/", "/data/runs/{run_id}"),
                                          ("s3://moon/runs", "s3://moon/runs/{run_id}")])
def test_the_default_output_folder_follows_moon_runs_root(airflow_db, monkeypatch, value, output):
    dag = _moon_augment_with(monkeypatch, MOON_RUNS_ROOT=value)
    assert dag.params.validate()["output_uri"] == output


def test_a_relative_moon_runs_root_fails_the_import_saying_why(airflow_db, monkeypatch):
    with pytest.raises(ValueError, match="^MOON_RUNS_ROOT: 'runs' must be absolute or s3://"):
        _moon_augment_with(monkeypatch, MOON_RUNS_ROOT="runs")

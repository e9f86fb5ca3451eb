"""The moon DAGs' task bodies without Airflow or Ray: the trigger form, planning, job commands, run checks."""
from __future__ import annotations

import json
import shlex

import pytest

from augment.core import manifest
from augment.orchestrate import tasks as T

STAGES = ["validate", "ner", "enrich_title", "background_prompts"]


def form(**overrides):
    params = {"input_uri": "/data/catalogue.parquet", "output_uri": "/runs/{run_id}", "profile": "local",
              "config_file": None, "stages": [], "shards_per_task": 1, "limit": None, "ray_conn_id": "ray_default",
              "env_vars": {}}
    params.update(overrides)
    return params


def test_output_uri_placeholder_becomes_the_dag_run_id_as_a_folder_name():
    request = T.RunRequest.from_params(form(), "manual__2026-01-01T00:00:00+00:00")
    assert request.output_uri == "/runs/manual__2026-01-01T00-00-00-00-00"


@pytest.mark.parametrize("field,value,message", [
    ("input_uri", "", "input_uri"),
    ("output_uri", "", "output_uri"),
    ("output_uri", "runs/relative", "must be absolute"),
    ("shards_per_task", 0, "shards_per_task"),
    ("limit", 0, "limit"),
    ("env_vars", ["A=1"], "env_vars"),
])
def test_bad_form_values_are_refused_naming_the_field(field, value, message):
    with pytest.raises(T.RunRequestError, match=message):
        T.RunRequest.from_params(form(**{field: value}), "r")


def test_unknown_stage_is_refused_before_planning():
    request = T.RunRequest.from_params(form(stages=["validate", "telepathy"]), "r")
    with pytest.raises(T.RunRequestError, match="telepathy"):
        request.config()


def test_batch_command_is_moon_run_restricted_to_its_shards():
    request = T.RunRequest.from_params(form(stages=STAGES, limit=40, config_file="/etc/moon.yaml"), "r")
    args = shlex.split(request.moon_run(["aa", "bb"]))
    assert args == ["python", "-m", "augment.cli", "run", "--input", "/data/catalogue.parquet", "--output", "/runs/r",
                    "--config", "/etc/moon.yaml", "--profile", "local", "--stages", ",".join(STAGES),
                    "--limit", "40", "--shards", "aa,bb", "--no-progress"]


def test_batch_command_quotes_paths_with_spaces():
    request = T.RunRequest.from_params(form(input_uri="/data/my catalogue.parquet"), "r")
    assert shlex.split(request.moon_run(["aa"]))[5] == "/data/my catalogue.parquet"


def test_batches_split_in_order_with_a_short_last_one():
    assert T.batches(["a", "b", "c", "d", "e"], 2) == [["a", "b"], ["c", "d"], ["e"]]


def test_plan_of_the_sample_gives_one_job_per_batch_of_pending_shards(tmp_path, sample_path):
    request = T.RunRequest.from_params(
        form(input_uri=sample_path, output_uri=str(tmp_path / "run"), stages=STAGES, shards_per_task=2,
             env_vars={"AWS_REGION": "eu-west-1"}), "r")
    planned = T.plan(request)
    assert len(planned["shards"]) == 3  # 80 rows, 32 per shard
    assert [job["job_metadata"]["moon_shards"].split(",") for job in planned["jobs"]] == T.batches(planned["shards"], 2)
    assert planned["jobs"][0]["runtime_env"] == {"env_vars": {"AWS_REGION": "eu-west-1"}}
    assert (tmp_path / "run" / manifest.RUN_FILE).exists()
    json.dumps(planned)  # an XCom: plain JSON, no rows


def test_plan_skips_committed_shards(tmp_path, sample_path):
    request = T.RunRequest.from_params(form(input_uri=sample_path, output_uri=str(tmp_path / "run"), stages=STAGES), "r")
    first = T.plan(request)
    _commit(tmp_path / "run", first["shards"][0], first["run_id"], config_hash=first["config_hash"])
    again = T.plan(request)
    assert [job["job_metadata"]["moon_shards"] for job in again["jobs"]] == first["shards"][1:]


def test_plan_of_a_missing_input_is_a_request_error(tmp_path):
    request = T.RunRequest.from_params(form(input_uri=str(tmp_path / "nope.parquet"), output_uri=str(tmp_path / "o"),
                                            stages=STAGES), "r")
    with pytest.raises(T.RunRequestError, match="plan"):
        T.plan(request)


def test_check_run_names_the_shards_not_committed(tmp_path):
    _commit(tmp_path, "s1", "run-1")
    with pytest.raises(T.RunIncomplete, match="1 of 2 shards are not committed .*: s2"):
        T.check_run(str(tmp_path), ["s1", "s2"])


def test_check_run_totals_the_planned_shards(tmp_path):
    _commit(tmp_path, "s1", "run-1", rows_in=5, rows_out=4)
    _commit(tmp_path, "s2", "run-1", rows_in=3, rows_out=3)
    totals = T.check_run(str(tmp_path), ["s1", "s2"])
    assert totals == {"shards": 2, "rows_in": 8, "rows_out": 7, "rows_quarantined": 1, "bytes": 2 * 3,
                      "quarantine_reasons": {"bad_image": 1}}


def test_check_run_refuses_a_committed_shard_whose_data_file_is_gone(tmp_path):
    _commit(tmp_path, "s1", "run-1")
    (tmp_path / "data" / "s1.parquet").unlink()
    with pytest.raises(T.RunIncomplete, match="data/s1.parquet"):
        T.check_run(str(tmp_path), ["s1"])


def test_report_url_of_a_local_run_is_a_file_url(tmp_path):
    assert T.report_url(str(tmp_path)) == (tmp_path / "report" / "index.html").as_uri()


def test_report_url_of_an_s3_run_opens_the_console():
    assert T.report_url("s3://bucket/runs/r1") == \
        "https://s3.console.aws.amazon.com/s3/object/bucket?prefix=runs/r1/report/index.html"


def test_train_request_defaults_checkpoints_into_the_run_folder():
    job = T.train_request("/runs/r1", {"train_config": "tiny"}, "asset_triggered__2026-01-01T00:00:00+00:00")
    assert shlex.split(job["entrypoint"]) == [
        "python", "-m", "augment.cli", "train", "--data", "/runs/r1", "--config", "tiny",
        "--output", "/runs/r1/checkpoints/asset_triggered__2026-01-01T00-00-00-00-00"]


def _commit(run_dir, shard_id, run_id, rows_in=2, rows_out=2, config_hash="h"):
    data = run_dir / "data" / f"{shard_id}.parquet"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_bytes(b"PAR")
    quarantined = rows_in - rows_out
    manifest.commit(str(run_dir), manifest.ShardRecord(
        shard_id=shard_id, source_uri="/in.parquet", row_start=0, row_stop=rows_in, rows_in=rows_in,
        rows_out=rows_out, rows_quarantined=quarantined,
        quarantine_reasons={"bad_image": quarantined} if quarantined else {}, data_file=f"data/{shard_id}.parquet",
        quarantine_file=None, checksum="x", bytes=3, config_hash=config_hash, code_version="c", run_id=run_id,
        schema_version="1", timings={}))


def test_failed_batch_callback_logs_its_shard_ids(caplog):
    class Task:
        job_metadata = {"moon_shards": "s1,s2", "moon_run_uri": "/runs/r"}

    class TI:
        dag_id, run_id, task_id, map_index, try_number = "moon_augment", "manual__1", "run_batch", 4, 3

    with caplog.at_level("ERROR", logger="augment.orchestrate.tasks"):
        T.log_failed_batch({"task": Task(), "ti": TI()})
    assert caplog.messages == ["moon batch failed: dag moon_augment run manual__1 task run_batch map index 4 try 3; "
                               "shards: s1,s2; run folder: /runs/r"]

"""The moon DAGs' task bodies without Airflow or Ray: the trigger form, planning, job commands, run checks."""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex

import pytest

from augment.core import manifest
from augment.orchestrate import tasks as T

STAGES = ["validate", "ner", "enrich_title", "background_prompts"]


def form(**overrides):
    params = {"input_uri": "/data/catalogue.parquet", "output_uri": "/runs/{run_id}", "profile": "local",
              "config_file": None, "stages": [], "shards_per_task": None, "max_tasks": 1024, "gpus": None,
              "limit": None, "ray_conn_id": "ray_default",
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
    ("max_tasks", 0, "max_tasks"),
    ("gpus", "two", "gpus"),
    ("limit", 0, r"limit: must be at least 1 \(or empty for every row\)"),
    ("limit", "forty", "limit: must be a whole number, got 'forty'"),
    ("env_vars", ["A=1"], "env_vars"),
    ("env_vars", {"A B": "1"}, "env_vars: 'A B' is not a variable name"),
    ("env_vars", {"LD_PRELOAD": "/tmp/x.so"}, "env_vars: LD_PRELOAD chooses which code the job runs"),
    ("env_vars", {"PYTHONPATH": "/tmp"}, "env_vars: PYTHONPATH chooses"),
    ("env_vars", {"BASH_ENV": "/tmp/x.sh"}, "env_vars: BASH_ENV chooses"),
    ("env_vars", {"PATH": "/tmp:/usr/bin"}, "env_vars: PATH chooses"),
    ("env_vars", {"AWS_REGION": None}, "^env_vars: AWS_REGION's value must be text or a number, got 'None'"),
    ("env_vars", {"A": ["x"]}, "^env_vars: A's value must be text or a number"),
    ("env_vars", {"A": "x\0y"}, "^env_vars: A's value must be text or a number"),
    ("max_tasks", 2.7, "^max_tasks: must be a whole number, got 2.7"),
    ("max_tasks", True, "^max_tasks: must be a whole number, got True"),
    ("max_tasks", float("inf"), "^max_tasks: must be a whole number, got inf"),
    ("gpus", "2.5", "^gpus: must be a whole number, got '2.5'"),
    ("limit", "\uff12", "^limit: must be a whole number"),
    ("stages", 5, "^stages: must be a list of stage names, got '5'"),
    ("stages", {"ner": True}, "^stages: must be a list of stage names"),
    ("stages", ["ner", 3], "^stages: must be a list of stage names"),
    ("profile", 5, "^profile: must be text, got int"),
    ("ray_conn_id", ["a"], "^ray_conn_id: must be text, got list"),
])
def test_bad_form_values_are_refused_naming_the_field(field, value, message):
    with pytest.raises(T.RunRequestError, match=message):
        T.RunRequest.from_params(form(**{field: value}), "r")


def test_an_empty_limit_is_every_row():
    assert T.RunRequest.from_params(form(limit=""), "r").limit is None
    assert T.RunRequest.from_params(form(limit="  "), "r").limit is None


@pytest.mark.parametrize("value", [3, 3.0, "3", " +3 "])
def test_a_whole_number_may_come_as_json_text_or_a_float_with_no_fraction(value):
    assert T.RunRequest.from_params(form(max_tasks=value), "r").max_tasks == 3


def test_stages_come_as_a_list_or_as_comma_separated_text_and_env_values_as_text():
    request = T.RunRequest.from_params(form(stages=" validate, ner ,", env_vars={"N": 2, "T": "x"}), "r")
    assert request.stages == ["validate", "ner"]
    assert request.env_vars == {"N": "2", "T": "x"}
    assert T.RunRequest.from_params(form(stages=None, profile="", ray_conn_id=None), "r").stages == []


def test_unknown_stage_is_refused_before_planning():
    request = T.RunRequest.from_params(form(stages=["validate", "telepathy"]), "r")
    with pytest.raises(T.RunRequestError, match="telepathy"):
        request.config()


def test_batch_command_is_moon_run_on_one_batch_of_the_saved_plan():
    request = T.RunRequest.from_params(form(stages=STAGES, limit=40, config_file="/etc/moon.yaml"), "r")
    args = shlex.split(request.moon_run(7, 20))
    assert args == ["python", "-m", "augment.cli", "run", "--input", "/data/catalogue.parquet", "--output", "/runs/r",
                    "--config", "/etc/moon.yaml", "--profile", "local", "--stages", ",".join(STAGES),
                    "--limit", "40", "--batch", "7", "--shards-per-batch", "20", "--no-progress"]


def test_a_config_file_that_extends_a_profile_replaces_the_forms_profile(tmp_path):
    extends_gpu = tmp_path / "gpu-run.yaml"
    extends_gpu.write_text("extends: gpu\nrun:\n  shard_size: 16\n")
    plain = tmp_path / "plain.yaml"
    plain.write_text("run:\n  shard_size: 16\n")
    request = T.RunRequest.from_params(form(config_file=str(extends_gpu)), "r").with_file_profile()
    assert request.profile is None and request.config().profile == "gpu"
    assert "--profile" not in shlex.split(request.moon_run(0, 1))
    with pytest.raises(T.RunRequestError, match="extends the profile 'gpu' and --profile asks for 'local'"):
        T.RunRequest.from_params(form(config_file=str(extends_gpu)), "r").config()  # what moon run would say
    kept = T.RunRequest.from_params(form(config_file=str(plain), profile="gpu"), "r").with_file_profile()
    assert kept.profile == "gpu" and kept.config().profile == "gpu"


def test_batch_command_quotes_paths_with_spaces():
    request = T.RunRequest.from_params(form(input_uri="/data/my catalogue.parquet"), "r")
    assert shlex.split(request.moon_run(0, 1))[5] == "/data/my catalogue.parquet"


@pytest.mark.parametrize("overrides,max_map_length,expected", [
    ({}, None, 1024),
    ({}, 300, 300),  # Airflow's max_map_length wins over max_tasks
    ({"max_tasks": 50}, 1024, 50),
    ({"gpus": 8}, 1024, 32),  # 4 batches per GPU
    ({"gpus": 256, "max_tasks": 512}, 1024, 512),
])
def test_the_most_batches_follow_max_tasks_airflows_limit_and_the_gpus(overrides, max_map_length, expected):
    assert T.RunRequest.from_params(form(**overrides), "r").max_batches(max_map_length) == expected


def test_plan_of_the_sample_gives_one_job_per_batch_of_pending_shards(tmp_path, sample_path):
    request = T.RunRequest.from_params(
        form(input_uri=sample_path, output_uri=str(tmp_path / "run"), stages=STAGES, shards_per_task=2,
             env_vars={"AWS_REGION": "eu-west-1"}), "r")
    planned = T.plan(request)
    assert (planned["shards"], planned["batches"], planned["shards_per_batch"]) == (3, 2, 2)  # 80 rows, 32 a shard
    assert [job["job_metadata"]["moon_batch"] for job in planned["jobs"]] == ["0", "1"]
    assert all("--batch" in job["entrypoint"] and "--shards-per-batch 2" in job["entrypoint"]
               for job in planned["jobs"])
    assert planned["jobs"][0]["runtime_env"] == {"env_vars": {"AWS_REGION": "eu-west-1"}}
    assert (tmp_path / "run" / manifest.RUN_FILE).exists() and (tmp_path / "run" / "_plan" / "plan.json").exists()
    json.dumps(planned)  # an XCom: plain JSON, no rows


def test_batches_are_capped_by_max_tasks_however_many_shards(tmp_path, sample_path):
    request = T.RunRequest.from_params(form(input_uri=sample_path, output_uri=str(tmp_path / "run"), stages=STAGES,
                                            shards_per_task=1, max_tasks=2), "r")
    planned = T.plan(request, max_map_length=1024)
    assert (planned["batches"], planned["shards_per_batch"], len(planned["jobs"])) == (2, 2, 2)
    assert all(len(job["entrypoint"]) < 400 for job in planned["jobs"])  # a batch number, never a shard list


def test_plan_skips_batches_whose_shards_are_all_committed(tmp_path, sample_path):
    from augment import plan as P

    request = T.RunRequest.from_params(form(input_uri=sample_path, output_uri=str(tmp_path / "run"), stages=STAGES,
                                            shards_per_task=1), "r")
    first = T.plan(request)
    ids = P.planned_shard_ids(str(tmp_path / "run"))
    _commit(tmp_path / "run", ids[0], first["run_id"], config_hash=first["config_hash"])
    again = T.plan(request)
    assert [job["job_metadata"]["moon_batch"] for job in again["jobs"]] == ["1", "2"]


def test_plan_of_a_missing_input_is_a_request_error(tmp_path):
    request = T.RunRequest.from_params(form(input_uri=str(tmp_path / "nope.parquet"), output_uri=str(tmp_path / "o"),
                                            stages=STAGES), "r")
    with pytest.raises(T.RunRequestError, match=r"^input_uri: .*nope.parquet"):
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


def test_check_run_reads_the_planned_shards_from_the_saved_plan(tmp_path, sample_path):
    from augment import plan as P

    run = tmp_path / "run"
    request = T.RunRequest.from_params(form(input_uri=sample_path, output_uri=str(run), stages=STAGES), "r")
    planned = T.plan(request)
    ids = P.planned_shard_ids(str(run))
    for shard in ids[:2]:
        _commit(run, shard, planned["run_id"])
    with pytest.raises(T.RunIncomplete, match=f"1 of 3 shards are not committed .*: {ids[2]}$"):
        T.check_run(str(run))
    _commit(run, ids[2], planned["run_id"])
    _commit(run, "not-planned", planned["run_id"])  # another input's shard in the folder is not counted
    assert T.check_run(str(run))["shards"] == 3


def test_check_run_lists_a_bounded_number_of_missing_shards(tmp_path):
    _commit(tmp_path, "s0", "run-1")
    with pytest.raises(T.RunIncomplete, match=r"100 of 101 shards .*: s1, s2, .*, s20 and 80 more$"):
        T.check_run(str(tmp_path), [f"s{i}" for i in range(101)])


@pytest.mark.parametrize("lost", ["data/s1.parquet", "quarantine/s1.parquet"])
def test_check_run_refuses_a_committed_shard_whose_file_is_gone(tmp_path, lost):
    _commit(tmp_path, "s1", "run-1", rows_in=3, rows_out=2)
    (tmp_path / lost).unlink()
    with pytest.raises(T.RunIncomplete, match=f"^committed files missing from {tmp_path}: {lost}$"):
        T.check_run(str(tmp_path), ["s1"])


def test_report_url_of_a_local_run_is_a_file_url(tmp_path):
    assert T.report_url(str(tmp_path)) == (tmp_path / "report" / "index.html").as_uri()


def test_report_url_of_an_s3_run_opens_the_console(monkeypatch):
    monkeypatch.delenv(T.REPORT_URL_ENV, raising=False)
    assert T.report_url("s3://bucket/runs/r1") == \
        "https://s3.console.aws.amazon.com/s3/object/bucket?prefix=runs/r1/report/index.html"


@pytest.mark.parametrize("served, url", [
    ("http://127.0.0.1:9000/", "http://127.0.0.1:9000/moon/runs/manual__2026-01-01T00%3A00%3A00/report/index.html"),
    ("https://{bucket}.s3.eu-west-1.amazonaws.com/{key}",
     "https://moon.s3.eu-west-1.amazonaws.com/runs/manual__2026-01-01T00%3A00%3A00/report/index.html"),
])
def test_report_url_of_an_s3_run_where_the_bucket_is_served(monkeypatch, served, url):
    monkeypatch.setenv(T.REPORT_URL_ENV, served)
    assert T.report_url("s3://moon/runs/manual__2026-01-01T00:00:00") == url


def test_train_request_defaults_checkpoints_into_the_run_folder():
    job = T.train_request("/runs/r1", {"train_config": "tiny"}, "asset_triggered__2026-01-01T00:00:00+00:00")
    assert shlex.split(job["entrypoint"]) == [
        "python", "-m", "augment.cli", "train", "--data", "/runs/r1", "--config", "tiny", "--resume",
        "--output", "/runs/r1/checkpoints/asset_triggered__2026-01-01T00-00-00-00-00"]


def _commit(run_dir, shard_id, run_id, rows_in=2, rows_out=2, config_hash="h"):
    data = run_dir / "data" / f"{shard_id}.parquet"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_bytes(b"PAR")
    quarantined = rows_in - rows_out
    if quarantined:
        (run_dir / "quarantine").mkdir(exist_ok=True)
        (run_dir / "quarantine" / f"{shard_id}.parquet").write_bytes(b"PAR")
    manifest.commit(str(run_dir), manifest.ShardRecord(
        shard_id=shard_id, source_uri="/in.parquet", row_start=0, row_stop=rows_in, rows_in=rows_in,
        rows_out=rows_out, rows_quarantined=quarantined,
        quarantine_reasons={"bad_image": quarantined} if quarantined else {}, data_file=f"data/{shard_id}.parquet",
        quarantine_file=f"quarantine/{shard_id}.parquet" if quarantined else None, checksum="x", bytes=3,
        config_hash=config_hash, code_version="c", run_id=run_id, schema_version="1", timings={}))


def test_failed_batch_callback_logs_its_batch_and_command(caplog):
    class Task:
        job_metadata = {"moon_batch": "4", "moon_shards_per_batch": "20", "moon_run_uri": "/runs/r"}
        entrypoint = "python -m augment.cli run --output /runs/r --batch 4 --shards-per-batch 20"

    class TI:
        dag_id, run_id, task_id, map_index, try_number = "moon_augment", "manual__1", "run_batch", 4, 3

    with caplog.at_level("ERROR", logger="augment.orchestrate.tasks"):
        T.log_failed_batch({"task": Task(), "ti": TI()})
    assert caplog.messages == ["moon batch failed: dag moon_augment run manual__1 task run_batch map index 4 try 3; "
                               "batch 4 (20 shards per batch); run folder: /runs/r; its command: "
                               "python -m augment.cli run --output /runs/r --batch 4 --shards-per-batch 20"]


# -- the same input spelled another way ------------------------------------------------------------------------------
def _job_plans(request, planned):
    """What each batch job of `planned` loads, from the arguments of its command, as `moon run --batch` does."""
    from augment import plan as P

    for job in planned["jobs"]:
        args = shlex.split(job["entrypoint"])
        value = {name: args[args.index(name) + 1] for name in ("--input", "--output", "--batch", "--shards-per-batch")}
        yield P.load_batch(value["--output"], request.config(), input_uri=value["--input"],
                           batch=int(value["--batch"]), shards_per_batch=int(value["--shards-per-batch"]))


def test_a_run_resumed_with_its_input_spelled_another_way_gives_jobs_the_saved_plan_accepts(tmp_path, sample_path):
    import shutil

    (tmp_path / "cat").mkdir()
    shutil.copy(sample_path, tmp_path / "cat" / "a.parquet")
    output = str(tmp_path / "run")
    T.plan(T.RunRequest.from_params(form(input_uri=f"{tmp_path}/cat/", output_uri=output, stages=STAGES), "r"))
    request = T.RunRequest.from_params(form(input_uri=f"{tmp_path}/cat", output_uri=output, stages=STAGES), "r")
    planned = T.plan(request)
    assert all(f"--input {tmp_path}/cat/ " in job["entrypoint"] for job in planned["jobs"])  # the plan's spelling
    assert [len(p.shards) for p in _job_plans(request, planned)] == [1, 1, 1]


# -- form values that cannot name a location -------------------------------------------------------------------------
@pytest.mark.parametrize("field,value,message", [
    ("input_uri", "data/catalogue.parquet", "^input_uri: 'data/catalogue.parquet' must be absolute or s3://"),
    ("input_uri", "s3://", "^input_uri: 's3://' names no bucket"),
    ("input_uri", "s3:///catalogue.parquet", "^input_uri: 's3:///catalogue.parquet' names no bucket"),
    ("output_uri", "s3://", "^output_uri: 's3://' names no bucket"),
    ("output_uri", "s3:///runs/{run_id}", "^output_uri: 's3:///runs/r' names no bucket"),
    ("config_file", "moon.yaml", "^config_file: 'moon.yaml' must be absolute or s3://"),
    ("config_file", "s3://", "^config_file: 's3://' names no bucket"),
    ("config_file", "run:\n  shard_size: 16\n", "^config_file: give the path .* not the YAML text itself$"),
])
def test_a_location_that_no_ray_job_can_find_is_refused_naming_its_field(field, value, message):
    with pytest.raises(T.RunRequestError, match=message):
        T.RunRequest.from_params(form(**{field: value}), "r")


def test_an_output_folder_that_is_a_file_or_under_one_is_refused(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(T.RunRequestError, match=f"^output_uri: {tmp_path}/afile is a file; give a folder"):
        T.RunRequest.from_params(form(output_uri=str(tmp_path / "afile")), "r")
    under = f"^output_uri: {tmp_path}/afile/run is under the file {tmp_path}/afile;"
    with pytest.raises(T.RunRequestError, match=under):
        T.RunRequest.from_params(form(output_uri=str(tmp_path / "afile" / "run")), "r")


@pytest.mark.parametrize("inside", ["", "/cat.parquet", "/2024/cat.jsonl"])
def test_an_output_folder_that_holds_the_input_is_refused(tmp_path, inside):
    """A run folder's files are never read as input: after such a run no run could read the catalogue again."""
    for folder in (str(tmp_path / "shop"), "s3://bucket/shop"):
        with pytest.raises(T.RunRequestError, match=f"^output_uri: {folder}/? holds the input"):
            T.RunRequest.from_params(form(input_uri=folder + inside, output_uri=folder + "/"), "r")
    assert T.RunRequest.from_params(form(input_uri="s3://bucket/shop", output_uri="s3://bucket/shop-runs/1"), "r")


@pytest.mark.parametrize("field, value", [("input_uri", 5), ("output_uri", {"x": 1}), ("input_uri", ["/a"])])
def test_a_text_field_given_another_type_is_named(field, value):
    with pytest.raises(T.RunRequestError, match=f"^{field}: must be text, got {type(value).__name__}"):
        T.RunRequest.from_params(form(**{field: value}), "r")


@pytest.mark.parametrize("name,reason", [("folder", "it is a folder, not a file"),
                                         ("x" * 300 + ".yaml", "File name too long")])
def test_a_config_file_that_cannot_be_read_is_refused_naming_the_field(tmp_path, name, reason):
    (tmp_path / "folder").mkdir()
    request = T.RunRequest.from_params(form(config_file=f"{tmp_path}/{name}"), "r")
    with pytest.raises(T.RunRequestError, match=f"^config_file: config file .* cannot be read: {reason}$"):
        T.plan(request)


def test_an_s3_output_with_no_bucket_writes_nothing_locally(tmp_path, monkeypatch, sample_path):
    from augment.core import storage

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="names no bucket"):
        storage.join("s3://", "_run.json")  # never the local path s3:/_run.json
    with pytest.raises(T.RunRequestError, match="^output_uri:"):
        T.plan(T.RunRequest.from_params(form(input_uri=sample_path, output_uri="s3://"), "r"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("message, field", [
    ("When getting information for key 'runs/r1/_run.json' in bucket 'shop': AWS Error ACCESS_DENIED", "output_uri"),
    ("When listing objects under key 'cat' in bucket 'shop': AWS Error NETWORK_CONNECTION", "input_uri"),
    ("When getting information for key 'runs-old/x' in bucket 'shop': AWS Error ACCESS_DENIED", "plan"),
    ("When getting information for key 'catalogue' in bucket 'shop': AWS Error ACCESS_DENIED", "plan"),
    ("When getting information for bucket 'other': AWS Error ACCESS_DENIED", "plan"),
])
def test_an_s3_error_of_planning_names_the_field_of_its_bucket_and_key(monkeypatch, message, field):
    """pyarrow's S3 errors name a bucket and a key, not the s3:// URI the form holds."""
    from augment import plan as P

    def refused(*args, **kwargs):
        raise OSError(message)

    monkeypatch.setattr(P, "plan_run", refused)
    monkeypatch.setattr(T.RunRequest, "config", lambda self: None)
    request = T.RunRequest.from_params(form(input_uri="s3://shop/cat", output_uri="s3://shop/runs/r1"), "r")
    with pytest.raises(T.RunRequestError) as refused_request:
        T.plan(request)
    assert str(refused_request.value) == f"{field}: {message}"


def test_an_os_error_of_planning_names_the_field_of_its_path(tmp_path, monkeypatch, sample_path):
    from augment import plan as P

    output = tmp_path / "run"

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(output / "_run.json"))

    monkeypatch.setattr(P, "plan_run", refused)
    request = T.RunRequest.from_params(form(input_uri=sample_path, output_uri=str(output)), "r")
    with pytest.raises(T.RunRequestError, match=f"^output_uri: {output}/_run.json: Permission denied$"):
        T.plan(request)


# -- planning refusals in the form's words ---------------------------------------------------------------------------
@pytest.mark.parametrize("first,then,words", [
    ({"limit": 40}, {"limit": None}, "different limit; resume"),
    ({"stages": STAGES}, {"stages": ["validate"]}, "different config (profile, config_file or stages)"),
])
def test_an_output_folder_of_another_run_is_refused_in_the_forms_words(tmp_path, sample_path, first, then, words):
    base = form(input_uri=sample_path, output_uri=str(tmp_path / "run"), stages=STAGES)
    T.plan(T.RunRequest.from_params(base | first, "r"))
    with pytest.raises(T.RunRequestError) as refused:
        T.plan(T.RunRequest.from_params(base | then, "r"))
    message = str(refused.value)
    assert message.startswith(f"output_uri: {tmp_path / 'run'} holds a run made with a ") and words in message
    assert "choose another output_uri" in message and "--" not in message


def test_an_output_folder_inside_another_run_is_refused_in_the_forms_words(tmp_path, sample_path):
    base = form(input_uri=sample_path, output_uri=str(tmp_path / "run"), stages=STAGES, limit=8)
    T.plan(T.RunRequest.from_params(base, "r"))
    nested = base | {"output_uri": str(tmp_path / "run" / "data" / "{run_id}")}
    with pytest.raises(T.RunRequestError, match=f"^output_uri: {tmp_path / 'run' / 'data' / 'r'} lies inside the run "
                                                f"folder {tmp_path / 'run'}, .*; choose an output_uri outside it$"):
        T.plan(T.RunRequest.from_params(nested, "r"))


def test_every_planning_refusal_has_the_forms_words():
    """A new remedy or identity key in plan.py needs the form's wording too, else the form would show moon run's
    flags (or fail on a missing key)."""
    from augment import plan as P

    assert T.FORM_REMEDIES.keys() == P.REMEDIES.keys() and T.FORM_FIELD_NAMES.keys() == P.FIELD_NAMES.keys()
    for remedy in P.REMEDIES:
        refusal = P.RunMismatch(f"/runs/a holds a run made with a different {P.CHANGED}", remedy, list(P.FIELD_NAMES))
        cli, words = str(refusal), refusal.words(T.FORM_FIELD_NAMES, T.FORM_REMEDIES)
        assert "--" in cli and "--" not in words and words.endswith(T.FORM_REMEDIES[remedy])
        assert "different config (profile, config_file or stages) and input and limit and shard size" in words


def test_a_corrupt_run_record_is_refused_in_the_forms_words(tmp_path, sample_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / manifest.RUN_FILE).write_text("{cut short")
    request = T.RunRequest.from_params(form(input_uri=sample_path, output_uri=str(tmp_path / "run")), "r")
    with pytest.raises(T.RunRequestError, match="^output_uri: .*not a readable run record.*delete that folder, or "
                                                "choose another output_uri, to start the run over$"):
        T.plan(request)


def test_an_output_that_cannot_be_reached_is_not_called_a_corrupt_run(tmp_path, monkeypatch, sample_path):
    import pyarrow as pa

    from augment.core import storage

    run_file = str(tmp_path / "run" / manifest.RUN_FILE)
    exists = storage.exists

    def unreachable(uri):  # what pyarrow says of a URI it cannot use: an ArrowInvalid, which is a ValueError
        if str(uri) == run_file:
            raise pa.ArrowInvalid(f"cannot reach {uri}")
        return exists(uri)

    monkeypatch.setattr(storage, "exists", unreachable)
    request = T.RunRequest.from_params(form(input_uri=sample_path, output_uri=str(tmp_path / "run")), "r")
    with pytest.raises(T.RunRequestError) as refused:
        T.plan(request)
    assert str(refused.value) == f"output_uri: cannot reach {run_file}"


# -- runs with no output ---------------------------------------------------------------------------------------------
def test_check_run_refuses_a_run_that_quarantined_every_row(tmp_path):
    _commit(tmp_path, "s1", "run-1", rows_in=3, rows_out=0)
    _commit(tmp_path, "s2", "run-1", rows_in=1, rows_out=0)
    with pytest.raises(T.RunEmpty, match=r"^every row of .* was quarantined \(4 rows in, 0 out; top reasons: "
                                         r"bad_image 4\): nothing to publish or train on"):
        T.check_run(str(tmp_path), ["s1", "s2"])


# -- the form's S3 settings in Airflow's tasks -----------------------------------------------------------------------
def test_plan_runs_with_the_forms_s3_settings_and_restores_the_environment(tmp_path, monkeypatch, sample_path):
    from augment import plan as P
    from augment.core import storage

    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    seen = {}
    plan_run = P.plan_run

    def spying(*args, **kwargs):
        seen.update(endpoint=storage.s3_endpoint(), region=os.environ.get("AWS_REGION"),
                    other=os.environ.get("NOT_S3"))
        return plan_run(*args, **kwargs)

    monkeypatch.setattr(P, "plan_run", spying)
    env_vars = {"AWS_ENDPOINT_URL_S3": "http://minio:9000", "AWS_REGION": "eu-west-1", "NOT_S3": "job only"}
    T.plan(T.RunRequest.from_params(form(input_uri=sample_path, output_uri=str(tmp_path / "run"),
                                         env_vars=env_vars), "r"))
    assert seen == {"endpoint": "http://minio:9000", "region": "eu-west-1", "other": None}
    assert "AWS_ENDPOINT_URL_S3" not in os.environ and os.environ["AWS_REGION"] == "us-east-1"


@pytest.mark.slow  # a moto S3 server
def test_an_s3_run_planned_through_the_forms_endpoint_resumes_under_another_spelling(monkeypatch, sample_path):
    from testkit.s3 import moto_s3

    with moto_s3("moon") as s3:
        endpoint = os.environ.pop("AWS_ENDPOINT_URL")  # Airflow's own environment does not know the endpoint
        s3.upload_file(sample_path, "moon", "cat/a.parquet")
        env_vars = {"AWS_ENDPOINT_URL_S3": endpoint}
        T.plan(T.RunRequest.from_params(form(input_uri="s3://moon/cat/", output_uri="s3://moon/runs/{run_id}",
                                             stages=STAGES, env_vars=env_vars), "r"))
        request = T.RunRequest.from_params(form(input_uri="s3://moon/cat", output_uri="s3://moon/runs/{run_id}",
                                                stages=STAGES, env_vars=env_vars), "r")
        planned = T.plan(request)
        with T.s3_settings(env_vars):
            assert [len(p.shards) for p in _job_plans(request, planned)] == [1, 1, 1]
        assert "AWS_ENDPOINT_URL_S3" not in os.environ


# -- run folder names ------------------------------------------------------------------------------------------------
def test_run_ids_that_differ_get_folders_that_differ():
    names = [T.safe_name(i) for i in ("nightly:1", "nightly+1", "nightly-1", "nightly 1")]
    assert len(set(names)) == 4 and names[2] == "nightly-1"  # a folder name already is kept
    assert all(n.startswith("nightly-1") for n in names)  # and every one stays readable
    assert T.safe_name("nightly:1") == T.safe_name("nightly:1")  # stable: a rerun of the DAG run resumes its folder
    made = ["manual__2026-01-01T00:00:00+00:00", "scheduled__2026-01-01T00:00:00.5+00:00", "manual__2026-01-01T00:00:01"]
    assert [T.safe_name(i) for i in made] == [  # ids Airflow makes: readable, no hash, apart by their timestamps
        "manual__2026-01-01T00-00-00-00-00", "scheduled__2026-01-01T00-00-00.5-00-00", "manual__2026-01-01T00-00-01"]
    assert T.safe_name("manual__2026-01-01T00:00:00-00:00") != T.safe_name(made[0])


@pytest.mark.parametrize("run_id", [".", ".."])
def test_a_run_id_that_would_leave_the_runs_folder_is_refused(run_id):
    with pytest.raises(T.RunRequestError, match=f"^output_uri: the DAG run id '{re.escape(run_id)}' cannot name"):
        T.RunRequest.from_params(form(), run_id)
    assert T.RunRequest.from_params(form(output_uri="/runs/fixed"), run_id).output_uri == "/runs/fixed"


# -- moon_train's checkpoint folder ----------------------------------------------------------------------------------
def test_an_s3_runs_checkpoints_go_under_a_local_root(monkeypatch):
    monkeypatch.delenv(T.CHECKPOINTS_ROOT_ENV, raising=False)
    job = T.train_request("s3://moon/runs/r1/", {"train_config": "tiny"}, "nightly")
    assert job["checkpoint_uri"] == "/tmp/moon-checkpoints/r1/nightly"
    assert shlex.split(job["entrypoint"])[-2:] == ["--output", "/tmp/moon-checkpoints/r1/nightly"]
    monkeypatch.setenv(T.CHECKPOINTS_ROOT_ENV, "/mnt/shared/ckpt/")
    assert T.train_request("s3://moon/runs/r1", {}, "nightly")["checkpoint_uri"] == "/mnt/shared/ckpt/r1/nightly"
    monkeypatch.setenv(T.CHECKPOINTS_ROOT_ENV, "ckpt")
    with pytest.raises(T.RunRequestError, match="^MOON_CHECKPOINTS_ROOT: 'ckpt' .* must be an absolute path"):
        T.train_request("s3://moon/runs/r1", {}, "nightly")


def test_a_training_job_resumes_what_an_earlier_try_of_its_dag_run_left(tmp_path):
    from model.cli import add_commands
    from model.config import load_config
    from model.train import resume_point

    job = T.train_request("/runs/r1", {"train_config": "tiny", "gpu": True}, "nightly")
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    args = parser.parse_args(shlex.split(job["entrypoint"])[3:])
    assert (args.data, args.config, args.output, args.resume, args.gpu) == (
        "/runs/r1", "tiny", "/runs/r1/checkpoints/nightly", True, True)
    assert resume_point(tmp_path / "empty", load_config("tiny"), resume=True, ray_version="2.60.0") is None  # 1st try


@pytest.mark.parametrize("value", ["s3://moon/checkpoints/{run_id}", "checkpoints/{run_id}"])
def test_a_checkpoint_folder_moon_train_cannot_write_is_refused(value):
    with pytest.raises(T.RunRequestError, match=r"^checkpoint_uri: .* must be an absolute path on the Ray cluster"):
        T.train_request("/runs/r1", {"checkpoint_uri": value}, "nightly")


@pytest.mark.parametrize("value,folder", [("/ckpt/{run_id}/model", "/ckpt/nightly/model"),
                                          ("/ckpt/fixed/", "/ckpt/fixed/nightly")])
def test_each_training_run_gets_a_checkpoint_folder_of_its_own(value, folder):
    assert T.train_request("/runs/r1", {"checkpoint_uri": value}, "nightly")["checkpoint_uri"] == folder


# -- the DAGs' environment -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value,root", [(None, "/tmp/moon-runs"), ("", "/tmp/moon-runs"), (" ", "/tmp/moon-runs"),
                                        ("/data/runs/", "/data/runs"), ("s3://moon/runs", "s3://moon/runs")])
def test_runs_root_is_absolute_or_s3(value, root):
    assert T.runs_root(value) == root


@pytest.mark.parametrize("value", ["runs", "./runs", "s3://"])
def test_a_runs_root_no_ray_job_can_find_is_refused(value):
    with pytest.raises(ValueError, match="^MOON_RUNS_ROOT: .* \\(or leave it unset for /tmp/moon-runs\\)$"):
        T.runs_root(value)


@pytest.mark.parametrize("value,jobs", [(None, 8), ("", 8), ("abc", 8), ("0", 1), ("-3", 1), (" 12 ", 12)])
def test_jobs_per_run_falls_back_to_a_working_number(value, jobs):
    assert T.jobs_per_run(value) == jobs


@pytest.mark.parametrize("value, kwargs", [
    (None, {}), ("  ", {}),
    ('{"CPU": 1, "moon_driver": 1}', {"entrypoint_num_cpus": 1.0, "entrypoint_resources": {"moon_driver": 1.0}}),
    ('{"GPU": 0.5, "memory": 2e9}', {"entrypoint_num_gpus": 0.5, "entrypoint_memory": 2_000_000_000}),
])
def test_driver_resources_become_the_operators_entrypoint_arguments(value, kwargs):
    assert T.driver_resources(value) == kwargs


@pytest.mark.parametrize("value, why", [
    ("moon_driver", "Expecting value"), ("[1]", "not a JSON object"), ("{}", "not a JSON object"),
    ('{"CPU": 0}', "CPU: 0 is not an amount above 0"), ('{"moon_driver": "1"}', "moon_driver: '1' is not an amount"),
    ('{"CPU": true}', "CPU: True is not an amount"),
])
def test_driver_resources_that_are_not_an_object_of_amounts_leave_drivers_on_the_head(value, why, caplog):
    with caplog.at_level("WARNING", logger=T.__name__):
        assert T.driver_resources(value) == {}
    assert f"MOON_JOB_DRIVER_RESOURCES={value!r}: " in caplog.text and why in caplog.text
    assert "job drivers run on the head node" in caplog.text


def test_a_training_jobs_environment_is_checked_like_a_runs():
    job = T.train_request("/runs/r1", {"env_vars": {"HF_HOME": "/models", "NCCL_DEBUG": "INFO"}}, "nightly")
    assert job["runtime_env"] == {"env_vars": {"HF_HOME": "/models", "NCCL_DEBUG": "INFO"}}
    with pytest.raises(T.RunRequestError, match="^env_vars: LD_LIBRARY_PATH chooses which code the job runs"):
        T.train_request("/runs/r1", {"env_vars": {"LD_LIBRARY_PATH": "/tmp"}}, "nightly")


@pytest.mark.parametrize("value, message", [
    ("tinny", "^train_config: no config named 'tinny' \\(named: base, paper, tiny\\); or give the absolute path"),
    ("configs/mine.yaml", "^train_config: 'configs/mine.yaml' must be an absolute path on the Ray cluster"),
    ("mine.json", "must be an absolute path"),
])
def test_a_training_config_that_cannot_be_read_on_the_cluster_is_refused(value, message):
    with pytest.raises(T.RunRequestError, match=message):
        T.train_request("/runs/r1", {"train_config": value}, "nightly", ["base", "paper", "tiny"])


@pytest.mark.parametrize("value, expected", [(None, "tiny"), (" base ", "base"),
                                             ("/etc/moon/m.yaml", "/etc/moon/m.yaml")])
def test_a_training_config_is_a_named_one_or_an_absolute_file(value, expected, monkeypatch):
    monkeypatch.delenv(T.TRAIN_CONFIG_ENV, raising=False)
    job = T.train_request("/runs/r1", {"train_config": value}, "nightly", ["base", "paper", "tiny"])
    assert config_of(job) == expected


def config_of(job: dict) -> str:
    """The --config of a training job's command."""
    args = shlex.split(job["entrypoint"])
    return args[args.index("--config") + 1]


@pytest.mark.parametrize("form", [None, "", "  "])
def test_an_empty_training_config_takes_the_environments(monkeypatch, form):
    """What every Asset-triggered moon_train run trains: $MOON_TRAIN_CONFIG, checked like the form's field and named
    in the error; a value in the form wins."""
    named = ["base", "paper", "tiny"]
    monkeypatch.setenv(T.TRAIN_CONFIG_ENV, " base ")
    assert config_of(T.train_request("/runs/r1", {"train_config": form}, "nightly", named)) == "base"
    assert config_of(T.train_request("/runs/r1", {"train_config": "paper"}, "nightly", named)) == "paper"
    monkeypatch.setenv(T.TRAIN_CONFIG_ENV, "/etc/moon/long.json")
    assert config_of(T.train_request("/runs/r1", {"train_config": form}, "nightly", named)) == "/etc/moon/long.json"
    monkeypatch.setenv(T.TRAIN_CONFIG_ENV, "huge")
    in_env = "^MOON_TRAIN_CONFIG \\(in Airflow's environment\\): "
    with pytest.raises(T.RunRequestError, match=in_env + "no config named 'huge'"):
        T.train_request("/runs/r1", {"train_config": form}, "nightly", named)
    monkeypatch.setenv(T.TRAIN_CONFIG_ENV, "configs/long.json")
    with pytest.raises(T.RunRequestError, match="^MOON_TRAIN_CONFIG .*'configs/long.json' must be an absolute path"):
        T.train_request("/runs/r1", {"train_config": form}, "nightly", named)
    monkeypatch.setenv(T.TRAIN_CONFIG_ENV, "")
    assert config_of(T.train_request("/runs/r1", {"train_config": form}, "nightly", named)) == "tiny"

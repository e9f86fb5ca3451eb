"""Mistakes on the `moon` command line end with one clear line and status 2, never a traceback."""
import pytest

from augment import cli


def run(capsys, *argv):
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:  # argparse refuses the arguments
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv", [("run", "--limit", "0"), ("run", "--shard-size", "-3"),
                                  ("report", "RUN", "--page-size", "0"),
                                  ("train", "--data", "RUN", "--output", "OUT", "--epochs", "0")])
def test_counts_below_one_are_refused(capsys, argv):
    code, err = run(capsys, *argv)
    assert code == 2
    assert "must be at least 1, got" in err


def test_count_that_is_no_number_is_refused(capsys):
    code, err = run(capsys, "run", "--limit", "ten")
    assert code == 2
    assert "expected a whole number, got 'ten'" in err


def test_training_on_a_folder_without_shards_names_it(capsys, tmp_path):
    code, err = run(capsys, "train", "--data", str(tmp_path), "--output", str(tmp_path / "ckpt"))
    assert code == 2
    assert err.strip() == f"error: {tmp_path} is not a run folder of `moon run` (no _run.json)"


def test_training_on_a_run_that_committed_nothing_says_how_to_resume(capsys, tmp_path):
    (tmp_path / "_run.json").write_text("{}")  # what a run that failed before its first shard leaves
    code, err = run(capsys, "train", "--data", str(tmp_path), "--output", str(tmp_path / "ckpt"))
    assert code == 2
    assert err.startswith(f"error: {tmp_path}: no committed shards; its run was only planned (--plan-only), or failed")
    assert "to resume it" in err and err.count("\n") == 1


def test_plan_accepts_zero_gpus(capsys):
    code, err = run(capsys, "plan", "--products", "1000", "--gpus", "0", "--json")
    assert code == 0, err


def test_report_gallery_may_be_empty_but_not_negative(capsys):
    assert cli.build_parser().parse_args(["report", "RUN", "--sample", "0"]).sample == 0
    code, err = run(capsys, "report", "RUN", "--sample", "-1")
    assert code == 2
    assert "must be at least 0, got -1" in err


def test_training_into_a_folder_with_checkpoints_is_one_line(capsys, tmp_path):
    (tmp_path / "ckpt" / "epoch-0003").mkdir(parents=True)
    (tmp_path / "ckpt" / "epoch-0003" / "model.safetensors").write_bytes(b"")
    code, err = run(capsys, "train", "--data", str(tmp_path), "--output", str(tmp_path / "ckpt"))
    assert code == 2
    assert err == f"error: {tmp_path / 'ckpt'} already holds epoch-0003: pass --resume, or another --output\n"


@pytest.mark.parametrize("argv, verbose", [
    (("-v", "train", "--data", "RUN", "--output", "OUT"), True),
    (("train", "--data", "RUN", "--output", "OUT", "-v"), True),
    (("ner", "eval", "--gold", "GOLD", "--verbose"), True),
    (("train", "--data", "RUN", "--output", "OUT"), False),
])
def test_verbose_is_taken_before_or_after_the_command(argv, verbose):
    assert cli.build_parser().parse_args(list(argv)).verbose is verbose


def _stop_before_the_first_stage(monkeypatch):
    from augment import config as C
    from augment import runner

    def execute(plan, config, use_ray):
        raise C.ConfigError("stages.image_variants.resources.num_gpus 0.75, but this machine has no GPU")

    monkeypatch.setattr(runner, "execute", execute)


def test_a_run_that_stops_on_its_config_leaves_no_folder_it_made(capsys, monkeypatch, tmp_path):
    _stop_before_the_first_stage(monkeypatch)
    code, err = run(capsys, "run", "--limit", "4", "--output", str(tmp_path / "run"), "--no-progress", "--no-ray")
    assert (code, err) == (2, "error: stages.image_variants.resources.num_gpus 0.75, but this machine has no GPU\n")
    assert not (tmp_path / "run").exists()  # a corrected rerun into it needs no --force


def test_a_run_that_stops_on_its_config_keeps_a_folder_it_did_not_make(capsys, monkeypatch, tmp_path):
    _stop_before_the_first_stage(monkeypatch)
    argv = ("run", "--limit", "4", "--output", str(tmp_path / "run"), "--no-progress", "--no-ray")
    assert run(capsys, *argv, "--plan-only")[0] == 0  # as the DAG's plan task leaves it
    assert run(capsys, *argv)[0] == 2
    assert (tmp_path / "run" / "_plan" / "plan.json").is_file()


def test_a_ray_address_where_nothing_listens_stops_the_run_at_once(capsys, tmp_path):
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    code, err = run(capsys, "run", "--limit", "2", "--output", str(tmp_path / "run"), "--no-progress",
                    "--ray-address", f"127.0.0.1:{port}")
    assert code == 1
    assert err.startswith(f"error: cannot reach the Ray cluster at 127.0.0.1:{port} (Connection refused)")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("shards", [",", " , ", ""])
def test_a_shards_list_without_an_id_is_refused(capsys, shards):
    code, err = run(capsys, "run", "--output", "RUN", "--shards", shards, "--no-ray")
    assert code == 2
    assert err == f"error: --shards {shards!r} names no shard id: give the comma-separated ids of the saved plan\n"


def test_an_output_that_is_a_file_is_refused_before_planning(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    code, err = run(capsys, "run", "--limit", "2", "--output", str(tmp_path / "notes.txt"), "--no-ray")
    assert code == 2
    assert err == (f"error: --output {tmp_path / 'notes.txt'} is a file; a run folder is a directory (give a new "
                   "or existing folder)\n")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_storage_that_cannot_be_reached_is_one_line_naming_the_endpoint(capsys, monkeypatch):
    from augment.core import storage

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setattr(storage, "S3_RETRY_ATTEMPTS", 1)  # refused at once, not after the retries a run wants
    storage._s3_filesystem.cache_clear()
    try:
        code, err = run(capsys, "report", "s3://b/runs/x")
    finally:
        storage._s3_filesystem.cache_clear()
    assert code == 1 and "AWS Error NETWORK_CONNECTION" in err and err.count("\n") == 1
    assert err.endswith("; S3 at http://127.0.0.1:9 could not be reached: check the endpoint, the network and any "
                        "proxy\n")


def test_an_image_store_outage_stops_the_run_and_the_resume_fetches_what_it_could_not(capsys, tmp_path, monkeypatch):
    """A short S3 outage committed every product it could not fetch as image_unreadable, the run exited 0, and the
    resume had nothing to do."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from augment.core import manifest, storage
    from testkit.photos import photo_file

    for i in range(6):
        (tmp_path / f"{i}.jpg").write_bytes(photo_file())
    catalogue = tmp_path / "in.parquet"
    pq.write_table(pa.table({"product_id": [f"p{i}" for i in range(6)], "title": ["Nike Cap"] * 6,
                             "image_uri": [f"{i}.jpg" for i in range(6)]}), catalogue)
    real_size = storage.size

    def size(uri):
        if uri.endswith("/3.jpg"):
            raise OSError("AWS Error NETWORK_CONNECTION during HeadObject operation: curl code 7")
        return real_size(uri)

    monkeypatch.setattr(storage, "size", size)
    argv = ("run", "--input", str(catalogue), "--output", str(tmp_path / "run"), "--shard-size", "2",
            "--stages", "validate,ner", "--no-progress", "--no-ray", "--json")
    code, err = run(capsys, *argv)
    assert code == 1
    assert f"error: cannot fetch the image {tmp_path}/3.jpg now (AWS Error NETWORK_CONNECTION" in err
    records = manifest.load(str(tmp_path / "run"))
    assert len(records) == 1 and not any(r.quarantine_reasons for r in records.values())  # the first shard only
    monkeypatch.setattr(storage, "size", real_size)  # the store is back
    code = cli.main(list(argv))
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["complete"] and summary["this_invocation"]["rows_in"] == 4
    assert (summary["run_total"]["rows_out"], summary["run_total"]["rows_quarantined"]) == (6, 0)


@pytest.mark.parametrize("argv", [("train", "--data", "RUN", "--output", "s3://bkt/ck"),
                                  ("eval", "--data", "RUN", "--checkpoint", "s3://bkt/ck"),
                                  ("sweep", "--data", "RUN", "--output", "s3://bkt/sweep")])
def test_checkpoints_on_s3_are_refused_in_one_line(capsys, tmp_path, monkeypatch, argv):
    """moon train --output s3://bkt/ck exited 0 having written to a local folder ./s3:/bkt/ck."""
    monkeypatch.chdir(tmp_path)
    code, err = run(capsys, *argv)
    assert code == 2
    assert ("s3://bkt/" in err and "checkpoints are written to and read from a local or shared filesystem (Ray "
            "Train's storage), not S3" in err and len(err.strip().splitlines()) == 1), err
    assert not (tmp_path / "s3:").exists()

"""SIGKILL the driver at each step of the commit protocol; a rerun must give exactly a clean run's output.

Each crash runs `moon run` as a real process with a fault point armed (augment.core.faults), checks what the crash
left, then reruns the same command and compares the final folder, as its readers see it, with a clean run.
"""
from __future__ import annotations

import signal

import pytest

from augment import config as C
from augment.core import manifest
from augment import plan as P, runner
from tests.reliability.helpers import (
    SAMPLE, assert_complete_and_clean, deterministic_rows, moon, temp_files, visible_rows,
)

pytestmark = pytest.mark.slow
LIMIT, SHARD_SIZE, SHARDS = 24, 8, 3
ARGS = ("run", "--input", str(SAMPLE), "--limit", str(LIMIT), "--shard-size", str(SHARD_SIZE), "--no-progress")
IN_PROCESS = ("--no-ray",)  # every crash below but one runs the stages in the driver's process


@pytest.fixture(scope="module")
def clean_rows(tmp_path_factory):
    out = tmp_path_factory.mktemp("clean") / "run"
    config = C.load(overrides={"run": {"shard_size": SHARD_SIZE, "progress": False}})
    runner.execute(P.plan_run(str(SAMPLE), str(out), config, limit=LIMIT), config, use_ray=False)
    rows = deterministic_rows(out)
    assert len(rows) == LIMIT
    return rows


def crash(out, faults, state, mode=IN_PROCESS):
    proc = moon(*ARGS, *mode, "--output", str(out), env={"MOON_FAULTS": faults, "MOON_FAULTS_STATE": str(state)})
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    return manifest.load(str(out))


def resume(out, mode=IN_PROCESS):
    proc = moon(*ARGS, *mode, "--output", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_kill_during_a_stage(tmp_path, clean_rows):
    out = tmp_path / "run"
    committed = crash(out, "stage:image_variants=2:kill", tmp_path / "faults")
    assert len(committed) == 1  # the first shard; the second died inside its image stage
    resume(out)
    assert_complete_and_clean(out, SHARDS, LIMIT)
    assert deterministic_rows(out) == clean_rows


def test_kill_during_a_shard_write_leaves_only_an_invisible_temp_file(tmp_path, clean_rows):
    out = tmp_path / "run"
    committed = crash(out, "during_shard_write=2:kill", tmp_path / "faults")
    assert len(committed) == 1
    assert [p.parent.name for p in temp_files(out)] == ["data"]  # written, never published
    assert len(visible_rows(out / "data", ["product_id"])) == SHARD_SIZE  # readers see the committed shard only
    resume(out)
    assert_complete_and_clean(out, SHARDS, LIMIT)
    assert deterministic_rows(out) == clean_rows


def test_kill_between_data_file_and_manifest_record(tmp_path, clean_rows):
    out = tmp_path / "run"
    committed = crash(out, "after_data_write=2:kill", tmp_path / "faults")
    assert len(committed) == 1
    assert len(list((out / "data").glob("*.parquet"))) == 2  # one published without its commit record
    resume(out)
    assert_complete_and_clean(out, SHARDS, LIMIT)
    assert deterministic_rows(out) == clean_rows


def test_kill_between_data_file_and_manifest_record_on_ray(tmp_path, clean_rows, ray_head):
    # The same crash where `moon run` runs by default: stages on Ray, shards written by the driver's writer
    # threads, so the shard whose data file is published second may not be the second in input order. The driver
    # joins the session's Ray head (as on a cluster): Ray ends the killed driver's job, its actors with it.
    out = tmp_path / "run"
    on_ray = ("--ray-address", ray_head.address)
    committed = crash(out, "after_data_write=2:kill", tmp_path / "faults", mode=on_ray)
    assert len(committed) < SHARDS
    assert len(list((out / "data").glob("*.parquet"))) > len(committed)  # published without its commit record
    resume(out, mode=on_ray)
    assert_complete_and_clean(out, SHARDS, LIMIT)
    assert deterministic_rows(out) == clean_rows


def test_kill_right_after_a_commit(tmp_path, clean_rows):
    out = tmp_path / "run"
    committed = crash(out, "after_commit=2:kill", tmp_path / "faults")
    assert len(committed) == 2
    proc = resume(out)
    assert "rows in 24  out 24  quarantined 0  (3 shards)" in proc.stdout
    assert "this invocation: 8 products" in proc.stdout  # only the uncommitted shard was redone
    assert_complete_and_clean(out, SHARDS, LIMIT)
    assert deterministic_rows(out) == clean_rows


def test_rows_quarantined_by_a_crashed_attempt_are_not_seen_twice(tmp_path, clean_rows):
    # First attempt: NER fails on every call, so shard 1's rows go to quarantine; the driver dies after publishing
    # that quarantine file, before its commit record. The rerun processes those rows fine: the stale quarantine
    # file must go, or readers would see 8 rows both processed and quarantined.
    out = tmp_path / "run"
    committed = crash(out, "stage_call:ner=1+:raise,after_data_write=1:kill", tmp_path / "faults")
    assert committed == {}
    stale = visible_rows(out / "quarantine", ["reason"])
    assert [r["reason"] for r in stale] == ["stage_error:InjectedFault"] * SHARD_SIZE
    resume(out)
    totals = assert_complete_and_clean(out, SHARDS, LIMIT)
    assert totals["rows_quarantined"] == 0
    assert deterministic_rows(out) == clean_rows


def test_a_torn_manifest_line_does_not_swallow_the_next_record(tmp_path):
    # A crash (or a full disk) in the middle of an append leaves a partial last line. The next commit must start
    # on a fresh line, or its record would be glued to the torn one and lost.
    record = manifest.ShardRecord(
        shard_id="a", source_uri="in", row_start=0, row_stop=2, rows_in=2, rows_out=2, rows_quarantined=0,
        quarantine_reasons={}, data_file="data/a.parquet", quarantine_file=None, checksum="x", bytes=1,
        config_hash="h", code_version="v", run_id="r", schema_version="1.0", timings={},
    )
    (tmp_path / manifest.MANIFEST).write_text(record.to_json() + "\n" + record.to_json()[:40])
    second = manifest.ShardRecord(**{**record.__dict__, "shard_id": "b", "data_file": "data/b.parquet"})
    manifest.commit(str(tmp_path), second)
    assert sorted(manifest.load(str(tmp_path))) == ["a", "b"]

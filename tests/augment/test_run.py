"""The spine end to end: the bundled sample through every stage (the session's runs, tests/conftest.py), a kill
from outside and resume, bad input. The fault-injected crashes are tests/reliability/test_driver_crash.py."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from augment import config as C
from augment import plan as P, runner
from augment.core import manifest
from augment.core import schema as S
from testkit.cli import ROOT, moon, start_moon
from testkit.photos import photo_file

pytestmark = pytest.mark.slow


def deterministic_rows(run_dir: Path) -> list[dict]:
    """Every data row of a run, deterministic columns only, in product order."""
    table = pads.dataset(str(run_dir / "data"), format="parquet").to_table(columns=list(S.DETERMINISTIC_COLUMNS))
    return sorted(table.to_pylist(), key=lambda r: r["product_id"])


def assert_invariant(run_dir: Path, rows_in: int) -> dict:
    records = manifest.load(str(run_dir))
    for r in records.values():
        assert r.rows_in == r.rows_out + r.rows_quarantined
    totals = manifest.totals(records.values())
    assert totals["rows_in"] == rows_in
    data_rows = pads.dataset(str(run_dir / "data")).count_rows() if (run_dir / "data").exists() else 0
    quarantine_rows = pads.dataset(str(run_dir / "quarantine")).count_rows() if (run_dir / "quarantine").exists() else 0
    assert data_rows == totals["rows_out"]
    assert quarantine_rows == totals["rows_quarantined"]
    assert data_rows + quarantine_rows == rows_in
    return totals


def test_sample_run_commits_every_product_with_the_output_schema(sample_run):
    out, plan = sample_run.out, sample_run.plan
    assert_invariant(out, 80)
    files = manifest.data_files(str(out))
    assert len(files) == len(plan.shards) == 3
    schema = pq.read_schema(files[0])
    assert S.check_version(schema) == S.SCHEMA_VERSION
    expected = S.output_schema(pa.schema([f for f in plan.input_schema if not f.name.startswith("_")]))
    assert schema.remove_metadata().equals(expected.remove_metadata())


def test_sample_run_has_five_variant_kinds_per_product(sample_run):
    out = sample_run.out
    table = pads.dataset(str(out / "data")).to_table(columns=["product_id", "variants", "enriched_title", "entities"])
    for row in table.to_pylist():
        kinds = [v["kind"] for v in row["variants"]]
        assert set(kinds) == set(S.VARIANT_KINDS), row["product_id"]
        assert all(v["image"] for v in row["variants"] if not v["status"].startswith("failed"))
        assert row["enriched_title"]


def test_shards_are_readable_by_ray_data(sample_run, ray_local):
    import ray.data

    out = sample_run.out
    ds = ray.data.read_parquet(str(out / "data"))
    assert ds.count() == 80
    assert set(S.OUTPUT_FIELDS.names) <= set(ds.schema().names)


def test_rerun_is_a_no_op(sample_run, monkeypatch):
    out, plan = sample_run.out, sample_run.plan
    config = C.load()
    monkeypatch.chdir(ROOT)  # the sample run names its input relative to the checkout
    again = P.plan_run(plan.input_uri, str(out), config)
    assert again.pending == []
    assert runner.execute(again, config).records == []


def test_in_process_runner_gives_the_same_rows_as_ray(sample_run, sample_run_in_process):
    assert deterministic_rows(sample_run_in_process.out) == deterministic_rows(sample_run.out)


def test_sigkill_mid_run_from_outside_then_resume(sample_run, tmp_path):
    out = sample_run.out
    crashed = tmp_path / "killed"
    proc = start_moon("run", "--output", str(crashed), "--shard-size", "8", "--no-progress", "--no-ray",
                      env={"MOON_FAULTS": "driver_batch=4:sleep30"})
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if crashed.exists() and len(manifest.load(str(crashed))) >= 3:
            break
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert 0 < len(manifest.load(str(crashed))) < 10
    resumed = start_moon("run", "--output", str(crashed), "--shard-size", "8", "--no-progress", "--no-ray")
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, output
    assert deterministic_rows(crashed) == deterministic_rows(out)


def test_gpu_profile_on_a_machine_without_gpus_stops_at_once_and_says_why(tmp_path):
    """The run's own local Ray can never get a GPU: without this check the GPU stages' actors wait for ever."""
    proc = moon("run", "--profile", "gpu", "--limit", "4", "--output", str(tmp_path / "run"), "--no-progress",
                env={"CUDA_VISIBLE_DEVICES": "", "RAY_ADDRESS": ""}, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert ("error: stages.image_variants.resources.num_gpus 0.75, stages.filter.resources.num_gpus 0.25, but this "
            "machine has no GPU") in proc.stderr
    assert not (tmp_path / "run").exists()  # the folder it made is gone: a rerun with --profile local needs no --force


def test_changed_config_is_refused_on_resume(sample_run):
    out, plan = sample_run.out, sample_run.plan
    proc = start_moon("run", "--input", plan.input_uri, "--output", str(out), "--shard-size", "5")
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "different shard size" in output and "--force" in output


BAD_ROWS = [
    ({"product_id": "ok-1", "title": "Nike Men Blue Running Shoes"}, None),
    ({"product_id": "empty-title", "title": "   "}, "empty_title"),
    ({"product_id": "no-image", "title": "Puma Cap", "image": None}, "missing_image"),
    ({"product_id": "broken-image", "title": "Puma Cap", "image": b"\xff\xd8\xff\xe0 not really"}, "image_undecodable"),
    ({"product_id": "huge", "title": "Puma Cap", "image": "BIG"}, "image_too_many_pixels"),
    ({"product_id": "ok-1", "title": "Duplicate of the first"}, "duplicate_product_id"),
    ({"product_id": "typed", "title": 12345}, "wrong_type:title"),
    ({"product_id": "escape", "title": "Puma Cap", "image": None, "image_uri": "../../etc/passwd"}, "image_path_outside_roots"),
]


def test_bad_input_file_completes_with_the_right_reasons(tmp_path, ray_local):
    import base64

    big = photo_file(1200, 1200, fmt="PNG")
    lines = []
    for row, _ in BAD_ROWS:
        row = dict(row)
        image = row.pop("image", photo_file())
        if image == "BIG":
            image = big
        if image is not None:
            row["image"] = "data:image/jpeg;base64," + base64.b64encode(image).decode()
        lines.append(json.dumps(row))
    src = tmp_path / "bad.jsonl"
    src.write_text("\n".join(lines) + "\n{not json\n")
    config = C.load()
    config.input.max_image_pixels = 1_000_000
    plan = P.plan_run(str(src), str(tmp_path / "out"), config)
    runner.execute(plan, config, use_ray=True, progress=False)
    totals = assert_invariant(tmp_path / "out", len(BAD_ROWS) + 1)
    quarantine = pads.dataset(str(tmp_path / "out" / "quarantine")).to_table().to_pylist()
    by_row = {q["lineage"]["source_row"]: q["reason"] for q in quarantine}
    expected = {i: reason for i, (_, reason) in enumerate(BAD_ROWS) if reason}
    expected[len(BAD_ROWS)] = "invalid_json"
    assert by_row == expected
    assert totals["rows_out"] == 1
    assert next(q for q in quarantine if q["reason"] == "invalid_json")["raw"] == "{not json"


def test_counting_products_without_an_image_reads_no_image_bytes(sample_run, monkeypatch):
    """The shard footer holds the image column's null count: the trainer's count of products without an image
    reads the product ids and titles (a blank title is no footer statistic), not the images of the whole run."""
    from collections import Counter

    from model import train as T

    files = manifest.committed_data_files(str(sample_run.out))
    for file in files:
        meta = pq.ParquetFile(file).metadata
        image = next(i for i in range(meta.num_columns) if meta.schema.column(i).path == "image")
        stats = meta.row_group(0).column(image).statistics
        assert stats is not None and stats.has_null_count and stats.null_count == 0
    read = []
    original = pq.ParquetFile.read_row_group
    monkeypatch.setattr(pq.ParquetFile, "read_row_group",
                        lambda self, group, columns=None, **kw: read.append(tuple(columns)) or
                        original(self, group, columns=columns, **kw))
    counts = sum((T._split_counts(file, 0.2)[0] for file in files), start=Counter())
    assert counts["training"] + counts["held_out"] == 80 and not counts["training_no_image"]
    assert set(read) == {("product_id", "title")}

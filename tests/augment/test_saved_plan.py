"""The plan saved in the run folder: written once, read back in part by each job, refused when the input changed."""
from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from augment import config as C
from augment import plan as P
from augment.core import manifest, storage
from testkit.photos import photo_file


@pytest.fixture
def config():
    cfg = C.load(check_stages=False)
    cfg.run.shard_size = 4
    return cfg


def catalogue(path, ids):
    pq.write_table(pa.table({"product_id": ids, "title": [f"title {i}" for i in ids]}), path)
    return str(path)


def test_the_plan_is_saved_once_and_read_back(tmp_path, config, monkeypatch):
    src = catalogue(tmp_path / "in.parquet", [str(i) for i in range(10)] + ["3"])
    out = str(tmp_path / "out")
    plan = P.plan_run(src, out, config, max_batches=2)
    header = json.loads((tmp_path / "out" / "_plan" / "plan.json").read_text())
    assert header["format"] == P.PLAN_FORMAT
    assert (header["shards"], header["rows"], header["shards_per_batch"], header["batches"]) == (3, 11, 2, 2)
    assert header["identity"]["inputs"][0]["uri"] == src
    # planned again: the saved plan is read, nothing is planned anew
    monkeypatch.setattr(P, "_make_plan", lambda *a, **k: pytest.fail("planned twice"))
    again = P.plan_run(src, out, config)
    assert [s.to_dict() for s in again.shards] == [s.to_dict() for s in plan.shards]
    assert again.shards[2].duplicate_rows == [10] and again.shards_per_batch == 2
    assert again.input_schema == plan.input_schema and again.run_id == plan.run_id


def test_a_batch_reads_its_own_shards_and_their_commit_records_only(tmp_path, config, monkeypatch):
    monkeypatch.setattr(P, "SHARD_GROUP", 3)  # the shard table in row groups of 3 shards: batches cross groups
    src = catalogue(tmp_path / "in.parquet", [str(i) for i in range(40)])
    out = str(tmp_path / "out")
    whole = P.plan_run(src, out, config, shards_per_batch=4)
    assert (len(whole.shards), whole.batches) == (10, 3)
    ids = [s.shard_id for s in whole.shards]
    committed = manifest.ShardRecord(
        shard_id=ids[5], source_uri=src, row_start=20, row_stop=24, rows_in=4, rows_out=4, rows_quarantined=0,
        quarantine_reasons={}, data_file=None, quarantine_file=None, checksum="x", bytes=0,
        config_hash=whole.config_hash, code_version="v", run_id=whole.run_id, schema_version="1", timings={})
    manifest.commit(out, committed)
    batch = P.load_batch(out, config, batch=1)
    assert [s.shard_id for s in batch.shards] == ids[4:8]
    assert [s.to_dict() for s in batch.shards] == [s.to_dict() for s in whole.shards[4:8]]
    assert list(batch.committed) == [ids[5]] and [s.shard_id for s in batch.pending] == [ids[4], ids[6], ids[7]]
    assert batch.summary()["batch"] == 1 and batch.summary()["run_shards"] == 10
    assert [s.shard_id for s in P.load_batch(out, config, batch=2).shards] == ids[8:]
    assert [s.shard_id for s in P.load_batch(out, config, batch=0, shards_per_batch=7).shards] == ids[:7]
    picked = P.load_batch(out, config, shard_ids=[ids[9], ids[1]])
    assert [s.shard_id for s in picked.shards] == [ids[1], ids[9]]
    with pytest.raises(ValueError, match="batches 0 to 2"):
        P.load_batch(out, config, batch=3)
    with pytest.raises(ValueError, match="unknown shard ids.*nope"):
        P.load_batch(out, config, shard_ids=["nope"])


def test_a_changed_input_refuses_the_saved_plan_naming_the_file(tmp_path, config):
    src = catalogue(tmp_path / "in.parquet", [str(i) for i in range(10)])
    out = str(tmp_path / "out")
    P.plan_run(src, out, config)
    catalogue(tmp_path / "in.parquet", [str(i) for i in range(12)])
    os.utime(src, (1, 1))
    with pytest.raises(P.PlanMismatch) as failure:
        P.load_batch(out, config, batch=0)
    message = str(failure.value)
    assert "\n" not in message and "different input" in message and f"{src}: size" in message
    with pytest.raises(P.PlanMismatch, match="planned for the input"):
        P.load_batch(out, config, input_uri=str(tmp_path / "other.parquet"), batch=0)
    config.run.shard_size = 5
    catalogue(tmp_path / "in.parquet", [str(i) for i in range(10)])
    with pytest.raises(P.PlanMismatch, match="shard size"):
        P.load_batch(out, config, batch=0)


def test_a_folder_without_a_saved_plan_says_how_to_make_one(tmp_path, config):
    with pytest.raises(P.NoSavedPlan, match="plan-only"):
        P.load_batch(str(tmp_path), config, batch=0)


def test_a_plan_of_another_format_is_refused(tmp_path, config):
    src = catalogue(tmp_path / "in.parquet", ["a", "b"])
    out = tmp_path / "out"
    P.plan_run(src, str(out), config)
    header = out / "_plan" / "plan.json"
    header.write_text(json.dumps(json.loads(header.read_text()) | {"format": "moon.plan/0"}))
    with pytest.raises(ValueError, match="format 'moon.plan/0'"):
        P.load_batch(str(out), config, batch=0)


@pytest.mark.parametrize("damage", ["garbage header", "list header", "garbage table", "no table"])
def test_a_damaged_saved_plan_is_named_with_the_remedy_and_a_new_plan_mends_it(tmp_path, config, damage):
    src = catalogue(tmp_path / "in.parquet", ["a", "b", "c", "d", "e"])
    out = tmp_path / "out"
    P.plan_run(src, str(out), config)
    header, table = out / "_plan" / "plan.json", out / "_plan" / P.SHARD_TABLE
    {"garbage header": lambda: header.write_bytes(b"\xf8\x00garbage"), "list header": lambda: header.write_text("[]"),
     "garbage table": lambda: table.write_bytes(b"not parquet"), "no table": table.unlink}[damage]()
    damaged = str(table if "table" in damage else header)
    with pytest.raises(ValueError, match=f"^{damaged}: .*; plan the run again \\(moon run --plan-only"):
        P.load_batch(str(out), config, batch=0)
    P.plan_run(src, str(out), config)  # what --plan-only does: the damaged plan is not reused
    batches = [P.load_batch(str(out), config, batch=b).pending for b in (0, 1)]
    assert sum(map(len, batches)) == 2


def test_batch_layout_never_exceeds_the_most_batches():
    assert P.batch_layout(156_250, 1024) == 153
    assert P.batch_layout(156_250, 1024, shards_per_batch=1) == 153  # grown to fit
    assert P.batch_layout(100, 1024, shards_per_batch=30) == 30
    assert P.batch_layout(0, 10) == 1
    with pytest.raises(ValueError):
        P.batch_layout(10, 0)


def test_moon_run_batch_processes_its_batch_only(tmp_path, capsys):
    from augment.cli import main

    src = catalogue(tmp_path / "in.parquet", [str(i) for i in range(20)])
    out = str(tmp_path / "out")
    common = ["run", "--input", src, "--output", out, "--shard-size", "4", "--stages", "validate", "--no-progress"]
    assert main([*common, "--plan-only", "--max-batches", "3"]) == 0
    assert "batches: 3 of 2 shards" in capsys.readouterr().out
    assert main([*common, "--batch", "1", "--no-ray", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["run_total"]["rows_in"] == 8 and summary["complete"]
    assert sorted(r.row_start for r in manifest.load(out).values()) == [8, 12]
    assert not (tmp_path / "out" / "report").exists()  # a batch's job leaves the report to the whole run
    assert main([*common, "--batch", "0", "--shards", "x"]) == 2
    assert "give one" in capsys.readouterr().err
    catalogue(tmp_path / "in.parquet", [str(i) for i in range(24)])
    assert main([*common, "--batch", "2", "--no-ray"]) == 2
    assert "was made with a different input" in capsys.readouterr().err


def test_a_batch_job_follows_the_limit_and_shard_size_of_the_saved_plan(tmp_path, capsys):
    """`--plan-only` prints `moon run --output OUT --batch N` as the way to run a batch: that command needs no
    --limit or --shard-size, given on the command line they must match."""
    from augment.cli import main

    src = catalogue(tmp_path / "in.parquet", [str(i) for i in range(20)])
    out = str(tmp_path / "out")
    planned = ["run", "--input", src, "--output", out, "--stages", "validate", "--no-progress"]
    assert main([*planned, "--limit", "12", "--shard-size", "4", "--plan-only"]) == 0
    assert f"moon run --output {out} --batch N runs one" in capsys.readouterr().out
    assert main(["run", "--output", out, "--stages", "validate", "--batch", "2", "--no-ray", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run_total"]["rows_in"] == 4
    assert [(r.row_start, r.row_stop) for r in manifest.load(out).values()] == [(8, 12)]
    for flag, value, named in (("--limit", "16", "--limit"), ("--shard-size", "5", "shard size")):
        assert main(["run", "--output", out, "--stages", "validate", "--batch", "0", "--no-ray", flag, value]) == 2
        assert f"was made with a different {named}" in capsys.readouterr().err


@pytest.mark.parametrize("few", [manifest.FEW_RECORDS, 0])  # files checked one by one / folders listed once
def test_a_committed_shard_whose_files_were_deleted_is_redone(tmp_path, caplog, monkeypatch, few):
    from augment.cli import main


    monkeypatch.setattr(manifest, "FEW_RECORDS", few)
    (tmp_path / "red.jpg").write_bytes(photo_file(64, 64))
    ids = [str(i) for i in range(20)] + [""]  # the last row is quarantined
    src = str(tmp_path / "in.parquet")
    pq.write_table(pa.table({"product_id": ids, "title": [f"red shirt {i}" for i in ids],
                             "image_uri": [str(tmp_path / "red.jpg")] * len(ids)}), src)
    out = tmp_path / "out"
    command = ["run", "--input", src, "--output", str(out), "--shard-size", "4", "--stages", "validate",
               "--no-progress", "--no-ray", "--shards-per-batch", "2"]
    assert main(command) == 0
    records = sorted(manifest.load(str(out)).values(), key=lambda r: r.row_start)
    (out / records[2].data_file).unlink()
    (out / records[5].quarantine_file).unlink()
    config = C.load_for_run(stages="validate", shard_size=4)
    lost = {records[2].shard_id, records[5].shard_id}
    plan = P.plan_run(src, str(out), config)
    assert {s.shard_id for s in plan.pending} == lost
    assert "2 committed shards of" in caplog.text and "lost or changed their files" in caplog.text
    assert [s.shard_id for s in P.load_batch(str(out), config, batch=1).pending] == [records[2].shard_id]
    assert not P.load_batch(str(out), config, batch=0).pending
    assert main([*command, "--batch", "1"]) == 0  # the batch job redoes its lost shard
    assert (out / records[2].data_file).is_file()
    assert main(command) == 0  # the whole run redoes the rest
    assert (out / records[5].quarantine_file).is_file() and not P.plan_run(src, str(out), config).pending


@pytest.mark.parametrize("few", [manifest.FEW_RECORDS, 0])
def test_a_committed_shard_whose_file_changed_size_is_redone_and_no_row_is_doubled(tmp_path, caplog, monkeypatch, few):
    """A data file cut short, or overwritten by another shard's file, no longer has its committed size."""
    from augment.cli import main


    monkeypatch.setattr(manifest, "FEW_RECORDS", few)
    (tmp_path / "red.jpg").write_bytes(photo_file(64, 64))
    ids = [str(i) for i in range(12)]
    src = str(tmp_path / "in.parquet")
    pq.write_table(pa.table({"product_id": ids, "title": [f"red shirt {i}" * (1 + int(i)) for i in ids],
                             "image_uri": [str(tmp_path / "red.jpg")] * len(ids)}), src)
    out = tmp_path / "out"
    command = ["run", "--input", src, "--output", str(out), "--shard-size", "4", "--stages", "validate",
               "--no-progress", "--no-ray"]
    assert main(command) == 0
    first, second, third = sorted(manifest.load(str(out)).values(), key=lambda r: r.row_start)
    cut = out / first.data_file
    cut.write_bytes(cut.read_bytes()[:-100])
    (out / second.data_file).write_bytes((out / third.data_file).read_bytes())  # the rows of `third` twice
    assert main(command) == 0
    assert "2 committed shards of" in caplog.text and "committed with" in caplog.text
    rows = [pid for record in manifest.load(str(out)).values()
            for pid in pq.read_table(out / record.data_file).column("product_id").to_pylist()]
    assert sorted(rows, key=int) == ids


def test_a_shard_file_overwritten_by_one_of_the_same_size_is_found_by_verify_and_redone(tmp_path, capsys):
    """Sizes alone miss a shard file replaced by another of the same size: `moon verify` reads every committed
    file against its recorded sha256, and `moon run --verify` redoes the shards that differ."""
    from augment.cli import main


    (tmp_path / "red.jpg").write_bytes(photo_file(64, 64))
    ids = [f"p{i}" for i in range(8)]
    src = str(tmp_path / "in.parquet")
    pq.write_table(pa.table({"product_id": ids, "title": [f"red shirt {i}" for i in ids],
                             "image_uri": [str(tmp_path / "red.jpg")] * len(ids)}), src)
    out = tmp_path / "out"
    command = ["run", "--input", src, "--output", str(out), "--shard-size", "4", "--stages", "validate",
               "--no-progress", "--no-ray"]
    assert main(command) == 0
    assert main(["verify", str(out)]) == 0
    assert "the 2 committed shards of" in capsys.readouterr().out
    first, second = sorted(manifest.load(str(out)).values(), key=lambda r: r.row_start)
    assert first.bytes == second.bytes  # the rows of `second` twice, in files of the committed sizes
    (out / first.data_file).write_bytes((out / second.data_file).read_bytes())
    assert main(command) == 0  # a resume compares sizes: nothing to redo

    def rows():
        return sorted(pid for record in manifest.load(str(out)).values()
                      for pid in pq.read_table(out / record.data_file).column("product_id").to_pylist())

    assert rows() == sorted(ids[4:] * 2)
    capsys.readouterr()
    assert main(["verify", str(out), "--json"]) == 1
    outcome = json.loads(capsys.readouterr().out)
    assert (outcome["shards"], list(outcome["changed"])) == (2, [first.shard_id])
    assert "sha256 differs" in outcome["changed"][first.shard_id]
    assert main(["verify", str(out)]) == 1
    assert f"redo them: moon run --input {src} --output {out} --verify" in capsys.readouterr().out
    assert main([*command, "--verify"]) == 0
    assert rows() == ids
    assert main(["verify", str(out)]) == 0


def test_a_quarantine_file_beside_a_data_file_is_checked_and_redone_too(tmp_path, capsys):
    """Only the data file of a shard that has both was checksummed and sized: a quarantine file cut short passed
    `moon verify`, a resume and --verify, and the report then failed on it."""
    from augment.cli import main

    (tmp_path / "red.jpg").write_bytes(photo_file(64, 64))
    ids = [f"p{i}" for i in range(4)]
    src = str(tmp_path / "in.parquet")
    pq.write_table(pa.table({"product_id": ids, "title": ["red shirt", None, "red shirt", "red shirt"],
                             "image_uri": [str(tmp_path / "red.jpg")] * len(ids)}), src)
    out = tmp_path / "out"
    command = ["run", "--input", src, "--output", str(out), "--stages", "validate", "--no-progress", "--no-ray"]
    assert main(command) == 0
    (record,) = manifest.load(str(out)).values()
    assert record.data_file and record.quarantine_file and record.quarantine_bytes > 0
    assert record.quarantine_checksum == storage.sha256(str(out / record.quarantine_file))
    assert main(["verify", str(out)]) == 0
    assert "(2 files," in capsys.readouterr().out
    quarantine = out / record.quarantine_file
    quarantine.write_bytes(quarantine.read_bytes()[:100])  # cut short
    assert main(["verify", str(out)]) == 1
    assert f"{record.quarantine_file} (100 bytes, committed with {record.quarantine_bytes})" in capsys.readouterr().out
    assert main(command) == 0  # a resume compares sizes: the shard is redone
    assert main(["verify", str(out)]) == 0
    assert pq.read_table(quarantine).column("product_id").to_pylist() == ["p1"]


def test_verify_names_what_it_cannot_check(tmp_path, capsys):
    from augment.cli import main

    assert main(["verify", str(tmp_path / "nowhere")]) == 2
    assert "nowhere not found" in capsys.readouterr().err
    assert main(["verify", str(tmp_path)]) == 2
    assert "holds no committed shards" in capsys.readouterr().err
    assert main(["run", "--output", str(tmp_path / "out"), "--verify", "--dry-run"]) == 2
    assert "--dry-run writes nothing" in capsys.readouterr().err


def test_relative_input_and_output_are_recorded_as_absolute_paths(tmp_path, monkeypatch, capsys):
    """The shards name the input (lineage.source_uri, against which a relative image_uri is read) and the variant
    images by path: relative ones named nothing once read from another working folder (the report showed no
    image, a trainer found none). A run planned with a relative input before still resumes under it."""
    from augment.cli import main


    (tmp_path / "cat" / "imgs").mkdir(parents=True)
    lines = []
    for i in range(2):
        (tmp_path / "cat" / "imgs" / f"{i}.jpg").write_bytes(photo_file(96, 96, colour=(200, 40 * i, 40)))
        lines.append(json.dumps({"product_id": str(i), "title": f"red shirt {i}", "image_uri": f"imgs/{i}.jpg"}))
    (tmp_path / "cat" / "products.jsonl").write_text("\n".join(lines) + "\n")
    monkeypatch.chdir(tmp_path)
    command = ["run", "--input", "cat/products.jsonl", "--output", "runs/r1", "--stages", "validate,image_variants",
               "--set", "output.image_storage=uri", "--no-ray", "--no-progress", "--json"]
    assert main(command) == 0
    assert json.loads(capsys.readouterr().out)["run_uri"] == str(tmp_path / "runs" / "r1")
    rows = pq.read_table(tmp_path / "runs" / "r1" / "data").to_pylist()
    assert {r["lineage"]["source_uri"] for r in rows} == {str(tmp_path / "cat" / "products.jsonl")}
    uris = [v["uri"] for r in rows for v in r["variants"] if v["uri"]]
    assert uris and all(u.startswith(str(tmp_path / "runs" / "r1" / "images") + "/") for u in uris)
    assert main(command) == 0 and json.loads(capsys.readouterr().out)["this_invocation"]["shards"] == 0
    # a run folder planned with the relative input (as before): the same command resumes it
    config = C.load_for_run(stages="validate")
    P.plan_run("cat/products.jsonl", "runs/old", config)
    old = ["run", "--input", "cat/products.jsonl", "--output", "runs/old", "--stages", "validate", "--no-ray",
           "--no-progress"]
    assert main(old) == 0 and main(old) == 0
    assert {r.source_uri for r in manifest.load(str(tmp_path / "runs" / "old")).values()} == {"cat/products.jsonl"}


def test_an_output_inside_another_run_folder_is_refused(tmp_path, capsys):
    """A run written under another run's data/ made that run's readers (pyarrow.dataset of its data/, its report)
    read this run's report pages and shards as its own."""
    from augment.cli import main

    src = catalogue(tmp_path / "in.parquet", [str(i) for i in range(4)])
    first = tmp_path / "first"
    assert main(["run", "--input", src, "--output", str(first), "--stages", "validate", "--plan-only"]) == 0
    capsys.readouterr()
    for inside in (first / "data" / "nested", first / "x" / "y"):
        assert main(["run", "--input", src, "--output", str(inside), "--stages", "validate", "--no-ray"]) == 2
        assert capsys.readouterr().err.strip() == (
            f"error: {inside} lies inside the run folder {first}, whose readers (its data/ read as a dataset, its "
            "report) would take this run's files for its own; choose an --output outside it")
        assert not inside.exists()
    assert manifest.enclosing_run(str(tmp_path / "second")) is None


def test_gpu_stages_run_in_this_process_on_a_machine_without_a_gpu_are_warned_of(tmp_path, caplog, monkeypatch):
    """--profile gpu-fast --no-ray on a CPU-only machine ran bf16 diffusion at 512 px on the CPU without a word: not
    three products in five minutes."""
    import torch

    from augment.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    src = catalogue(tmp_path / "in.parquet", ["1"])
    command = ["run", "--input", src, "--output", str(tmp_path / "out"), "--stages", "validate", "--no-ray",
               "--no-progress"]
    assert main([*command, "--set", "stages.validate.resources.num_gpus=1"]) == 0
    assert "stages.validate.resources.num_gpus ask for a GPU and this machine has none: with --no-ray they run on " \
           "the CPU" in caplog.text

"""The manifest read without holding it: streamed records, one job's lookups, S3 consolidation of new records only."""
from __future__ import annotations

import json

import pytest

from augment.core import manifest


def record(shard_id: str, rows: int = 2, **changes) -> manifest.ShardRecord:
    fields = dict(
        shard_id=shard_id, source_uri="in", row_start=0, row_stop=rows, rows_in=rows, rows_out=rows,
        rows_quarantined=0, quarantine_reasons={}, data_file=f"data/{shard_id}.parquet", quarantine_file=None,
        checksum="x", bytes=1, config_hash="h", code_version="v", run_id="r", schema_version="1.0", timings={},
    )
    return manifest.ShardRecord(**(fields | changes))


def test_streamed_records_keep_the_last_commit_of_each_shard_and_skip_torn_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(manifest, "_CHUNK", 64)  # lines cross read chunks
    lines = [record("a", checksum="old").to_json(), record("b").to_json(), "", record("a", checksum="new").to_json(),
             record("c").to_json()[:50]]
    (tmp_path / manifest.MANIFEST).write_text("\n".join(lines))
    records = list(manifest.iter_records(str(tmp_path)))
    assert sorted(r.shard_id for r in records) == ["a", "b"]
    assert {r.shard_id: r.checksum for r in records}["a"] == "new"
    assert manifest.load(str(tmp_path)).keys() == {"a", "b"}


def test_a_torn_recommit_does_not_hide_the_shards_earlier_record(tmp_path):
    (tmp_path / manifest.MANIFEST).write_text(record("a").to_json() + "\n" + record("a").to_json()[:-3] + "\n")
    assert [r.shard_id for r in manifest.iter_records(str(tmp_path))] == ["a"]
    assert manifest.committed(str(tmp_path), ["a"]).keys() == {"a"}


def test_a_run_folder_that_is_a_file_is_named_in_one_line(tmp_path, capsys):
    from augment.cli import main

    notes = tmp_path / "notes.txt"
    notes.write_text("not a run")
    with pytest.raises(NotADirectoryError, match=f"^{notes} is not a run folder of `moon run`: it is a file$"):
        manifest.load(str(notes))
    with pytest.raises(NotADirectoryError, match=f"^{notes / 'run'} is not a run folder of `moon run`: it is under "
                                                 f"the file {notes}$"):
        manifest.load(str(notes / "run"))
    assert [main(["report", str(notes)]), main(["eval", "--data", str(notes), "--bow"])] == [2, 2]
    assert capsys.readouterr().err.splitlines() == [f"error: {notes} is not a run folder of `moon run`: it is a file"] * 2


@pytest.mark.parametrize("changes, says", [
    ({"source_uri": None}, "source_uri must be text, got 'None'"),
    ({"row_start": "0"}, "row_start must be a whole number, got '0'"),
    ({"data_file": 3}, "data_file must be text or null, got '3'"),
    ({"rows_out": True}, "rows_out must be a whole number, got 'True'"),
    ({"rows_out": 1}, "rows_in 2 is not rows_out 1 + rows_quarantined 0"),
    ({"rows_out": -1, "rows_quarantined": 3}, "rows_out must be 0 or more, got -1"),
    ({"enrichment_status": None}, "enrichment_status must be an object of whole numbers by name, got null"),
    ({"quarantine_reasons": {"x": "3"}}, 'quarantine_reasons must be an object of whole numbers by name, got {"x": "3"}'),
    ({"timings": []}, "timings must be an object of numbers by name, got []"),
    ({"committed_at": "2026-01-01T00:00:00Z"},
     "committed_at must be a number (seconds since 1970), got '2026-01-01T00:00:00Z'"),
    ({"committed_at": None}, "committed_at is missing"),
])
def test_a_whole_record_of_the_wrong_types_is_named_by_line_not_taken_for_a_torn_one(tmp_path, capsys, changes,
                                                                                       says):
    """A torn line is a commit that never happened; a whole record edited by hand is damage, which every reader
    (moon run's resume, train, eval, the report) names instead of sorting None against text."""
    from augment.cli import main

    bad = record("b", **changes).to_json()
    if changes == {"committed_at": None}:  # a record without the field
        bad = json.dumps({k: v for k, v in json.loads(bad).items() if k != "committed_at"})
    (tmp_path / manifest.MANIFEST).write_text(record("a").to_json() + "\n" + bad + "\n")
    message = (f"{tmp_path / manifest.MANIFEST} line 2: the record of shard 'b': {says} (remove that line and "
               "resume the run to make the shard again)")
    for read in (lambda: manifest.load(str(tmp_path)), lambda: manifest.committed(str(tmp_path), ["b"])):
        with pytest.raises(manifest.RecordError) as refused:
            read()
        assert str(refused.value) == message
    assert manifest.committed(str(tmp_path), ["a"]).keys() == {"a"}  # a lookup reads only its shards' lines
    assert main(["eval", "--data", str(tmp_path), "--bow"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: {message}"


def test_a_compacted_manifest_is_read_as_written(tmp_path):
    """`jq -c` writes the records without the spaces json.dumps puts after `:`; lines are found by shard id."""
    lines = [json.dumps(json.loads(record(s).to_json()), separators=(",", ":")) for s in "ab"]
    (tmp_path / manifest.MANIFEST).write_text("\n".join(lines) + "\n")
    assert manifest.load(str(tmp_path)).keys() == {"a", "b"}
    assert manifest.committed(str(tmp_path), ["b"]).keys() == {"b"}


def test_committed_looks_up_only_the_shards_asked_for(tmp_path):
    for shard in "abcd":
        manifest.commit(str(tmp_path), record(shard))
    assert manifest.committed(str(tmp_path), ["b", "d", "zz"]).keys() == {"b", "d"}
    assert manifest.committed(str(tmp_path), []) == {}
    assert manifest.committed(str(tmp_path / "none"), ["a"]) == {}
    assert manifest.consolidate(str(tmp_path)) == 0  # local: the file is the manifest already


@pytest.mark.slow
def test_s3_consolidation_adds_only_records_not_yet_folded_in():
    from testkit.s3 import moto_s3

    with moto_s3("runs") as s3:
        run = "s3://runs/r1"
        for shard in "ab":
            manifest.commit(run, record(shard))
        assert manifest.consolidate(run) == 2
        for shard in "cdefgh":
            manifest.commit(run, record(shard))
        # c to h not yet folded in: fetched in parallel, each once
        assert sorted(r.shard_id for r in manifest.iter_records(run)) == list("abcdefgh")
        records = manifest.iter_records(run)
        assert [next(records).shard_id for _ in range(3)][:2] == ["a", "b"]
        records.close()  # a reader that stops early: the fetches left are cancelled, nothing hangs
        assert manifest.consolidate(run) == 6
        assert manifest.consolidate(run) == 0
        # a shard redone after it was folded in (its files were lost): the new record wins, read and folded
        manifest.mark_redone(run, ["b"])
        manifest.commit(run, record("b", checksum="redone"))
        assert {r.shard_id: r.checksum for r in manifest.iter_records(run)}["b"] == "redone"
        assert len(list(manifest.iter_records(run))) == 8
        assert manifest.consolidate(run) == 1
        assert manifest.load(run)["b"].checksum == "redone" and manifest.consolidate(run) == 0
        markers = s3.list_objects_v2(Bucket="runs", Prefix="r1/_manifest.d/redone/").get("Contents", [])
        assert [o["Key"] for o in markers if not o["Key"].endswith("/")] == []  # pyarrow may keep the folder
        body = s3.get_object(Bucket="runs", Key="r1/_manifest.jsonl")["Body"].read().decode()
        assert sorted(line[line.index('"shard_id"'):][13:14] for line in body.splitlines()) == list("abcdefgh")
        assert manifest.committed(run, ["a", "c", "x"]).keys() == {"a", "c"}

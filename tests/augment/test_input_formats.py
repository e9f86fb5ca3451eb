"""Inputs as real catalogues come: dictionary-encoded columns, nested and Hive-style folders, column mappings that
name no column, Excel's byte order mark, and files that cannot be read. Each ends in rows that go through, or in
one line naming the file (InputError, `error: ...` with status 2)."""
import gzip
import json
import logging

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from augment import cli, io
from augment import config as C
from augment import plan as P
from augment.core.names import PARSE_ERROR


@pytest.fixture
def config():
    cfg = C.load(check_stages=False)
    cfg.run.shard_size = 4
    return cfg


def moon(capsys, *argv):
    """`moon ARGV` in this process: (status, stderr)."""
    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err


def validate(capsys, tmp_path, path, *options):
    """`moon run` of the validate stage alone on `path`, without Ray: (status, stderr, run folder)."""
    out = tmp_path / "out"
    code, err = moon(capsys, "run", "--no-ray", "--stages", "validate", "--input", path, "--output", out, *options)
    return code, err, out


def read_all(source):
    return io.read_source_rows(source, 0, source.num_rows, source.schema, {})


# ---------------------------------------------------------------------------------------------------------------
# Dictionary-encoded columns
# ---------------------------------------------------------------------------------------------------------------
def dictionary_table(n=6):
    ids = [str(i % 4) for i in range(n)]  # ids 0 and 1 come twice
    return pa.table({
        "product_id": pa.array(ids).dictionary_encode(),
        "title": pa.array([f"title {i}" for i in range(n)]).dictionary_encode(),
        "colour_code": pa.array(["red", "blue"] * (n // 2)).dictionary_encode(),
        "stock": pa.array(list(range(n)), pa.int64()).dictionary_encode(),
    })


@pytest.mark.parametrize("rows_per_group", [64, 1], ids=["in_place", "restaged"])
def test_dictionary_columns_are_read_as_their_values(tmp_path, rows_per_group):
    path = tmp_path / "in.parquet"
    pq.write_table(dictionary_table(), path)
    source = io.open_source(str(path), str(tmp_path / "_input"), {}, rows_per_group)
    assert source.read_uri != str(path) if rows_per_group == 1 else source.read_uri == str(path)
    assert source.schema.field("colour_code").type == pa.string()
    assert source.schema.field("stock").type == pa.int64()
    table = read_all(source)
    assert table.column(PARSE_ERROR).to_pylist() == [None] * 6
    assert table.column("title").to_pylist() == [f"title {i}" for i in range(6)]
    assert table.column("colour_code").to_pylist() == ["red", "blue"] * 3
    assert table.column("stock").to_pylist() == list(range(6))
    assert io.read_column(source, "product_id", {}).to_pylist() == ["0", "1", "2", "3", "0", "1"]


def test_dictionary_columns_plan_with_duplicates_and_agree_with_plain_files(tmp_path, config):
    (tmp_path / "in").mkdir()
    pq.write_table(dictionary_table(), tmp_path / "in" / "a.parquet")
    plain = pa.table({"product_id": ["9", "0"], "title": ["x", "y"], "colour_code": ["green", "red"],
                      "stock": pa.array([7, 8], pa.int64())})
    pq.write_table(plain, tmp_path / "in" / "b.parquet")
    plan = P.plan_run(str(tmp_path / "in"), str(tmp_path / "out"), config)
    assert plan.input_schema.field("colour_code").type == pa.string()
    duplicates = {(s.source_uri.rsplit("/", 1)[1], r) for s in plan.shards for r in s.duplicate_rows}
    assert duplicates == {("a.parquet", 4), ("a.parquet", 5), ("b.parquet", 1)}


def test_a_pandas_category_title_goes_through_the_run(tmp_path, capsys, sample_path):
    frame = pq.read_table(sample_path).slice(0, 5).to_pandas()
    frame["title"] = frame["title"].astype("category")
    frame["brand"] = frame["brand"].astype("category")
    frame.to_parquet(tmp_path / "cat.parquet")
    code, err, out = validate(capsys, tmp_path, tmp_path / "cat.parquet")
    assert code == 0, err
    shards = pq.read_table(out / "data")
    assert shards.num_rows == 5
    assert shards.column("title").to_pylist() == frame["title"].astype(str).tolist()


# ---------------------------------------------------------------------------------------------------------------
# Folders
# ---------------------------------------------------------------------------------------------------------------
def write_parquet(path, ids):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"product_id": ids, "title": [f"t{i}" for i in ids]}), path)


def test_a_folder_is_listed_recursively_and_other_files_are_named(tmp_path, caplog):
    root = tmp_path / "in"
    write_parquet(root / "a.parquet", ["1"])
    write_parquet(root / "sub" / "b.parquet", ["2"])
    write_parquet(root / "sub" / "deeper" / "c.PARQUET", ["3"])
    for name in ("notes.txt", "sub/readme.md", "_SUCCESS", ".hidden.parquet", "_tmp/x.parquet", ".git/y.parquet"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x")
    with caplog.at_level(logging.INFO, logger="augment.io"):
        files = [f["uri"] for f in io.inputs(str(root))]
    assert files == [str(root / "a.parquet"), str(root / "sub" / "b.parquet"),
                     str(root / "sub" / "deeper" / "c.PARQUET")]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0] == (f"{root}: skipping 2 files not ending in .parquet, .jsonl/.ndjson/.json or .csv/.tsv "
                           "(text may be .gz): notes.txt, sub/readme.md")
    assert any("4 hidden or underscore files" in r.getMessage() for r in caplog.records)


def test_a_hive_style_folder_is_read(tmp_path, config):
    write_parquet(tmp_path / "in" / "year=2024" / "part-0.parquet", ["1", "2"])
    write_parquet(tmp_path / "in" / "year=2025" / "part-0.parquet", ["3"])
    plan = P.plan_run(str(tmp_path / "in"), str(tmp_path / "out"), config)
    assert [s.uri for s in plan.sources] == [str(tmp_path / "in" / f"year={y}" / "part-0.parquet")
                                             for y in (2024, 2025)]
    assert plan.rows_total == 3


def test_a_flat_folder_keeps_its_file_uris_and_shard_ids(tmp_path, config):
    for name in ("b.parquet", "a.parquet"):
        write_parquet(tmp_path / "in" / name, ["1", "2"])
    plan = P.plan_run(str(tmp_path / "in"), str(tmp_path / "out"), config)
    expected = [str(tmp_path / "in" / "a.parquet"), str(tmp_path / "in" / "b.parquet")]
    assert [s.source_uri for s in plan.shards] == expected
    assert [s.shard_id for s in plan.shards] == [P.shard_id(uri, 0, 2) for uri in expected]


def test_a_run_folder_inside_the_input_folder_is_not_input(tmp_path, config, caplog):
    write_parquet(tmp_path / "a.parquet", ["1", "2"])
    plan = P.plan_run(str(tmp_path), str(tmp_path / "out"), config)
    write_parquet(tmp_path / "out" / "data" / "shard.parquet", ["1"])  # what the run writes
    with caplog.at_level(logging.WARNING, logger="augment.io"):
        again = P.plan_run(str(tmp_path), str(tmp_path / "out"), config)
    assert again.run_id == plan.run_id and [s.uri for s in again.sources] == [str(tmp_path / "a.parquet")]
    assert any("run folder" in r.getMessage() and "out" in r.getMessage() for r in caplog.records)


def test_a_folder_of_other_files_says_what_it_holds(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(io.InputError, match=r"no \.parquet, \.jsonl or \.csv files under .* \(only 1 other file: "
                                            r"notes\.txt\)$"):
        io.inputs(str(tmp_path))


@pytest.mark.slow
def test_an_s3_folder_is_listed_recursively(caplog):
    from testkit.s3 import moto_s3

    with moto_s3("bucket") as s3:
        for key in ("in/a.jsonl", "in/sub/b.parquet", "in/year=2024/part-0.csv", "in/notes.txt", "in/_SUCCESS"):
            s3.put_object(Bucket="bucket", Key=key, Body=b"x")
        with caplog.at_level(logging.WARNING, logger="augment.io"):
            files = [f["uri"] for f in io.inputs("s3://bucket/in")]
    assert files == ["s3://bucket/in/a.jsonl", "s3://bucket/in/sub/b.parquet", "s3://bucket/in/year=2024/part-0.csv"]
    assert any("skipping 1 file" in r.getMessage() and "notes.txt" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------------------------------------------
# Column mappings
# ---------------------------------------------------------------------------------------------------------------
def test_a_mapping_to_a_column_the_input_lacks_is_an_error(tmp_path, capsys):
    path = tmp_path / "m2.jsonl"
    path.write_text('{"id": "1", "name": "a"}\n')
    for dry in ((), ("--dry-run",)):
        code, err, _ = validate(capsys, tmp_path, path, "--set", "input.columns.product_id=id",
                                "--set", "input.columns.title=nme", *dry)
        assert (code, err) == (2, f"error: input.columns.title: column 'nme' is not in {path} (columns: id, name)\n")


def test_a_mapping_to_no_column_is_an_error_even_beside_the_contract_column(tmp_path, config):
    write_parquet(tmp_path / "in.parquet", ["1"])
    config.input.columns = {"title": "nosuch"}
    with pytest.raises(io.InputError, match=r"^input\.columns\.title: column 'nosuch' is not in .*in\.parquet, which "
                                            r"has a 'title' column itself"):
        P.plan_run(str(tmp_path / "in.parquet"), str(tmp_path / "out"), config, write=False)


def test_in_a_folder_each_file_has_the_mapped_column_or_the_contract_column(tmp_path, config):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_text('{"product_id": "1", "name": "a"}\n')
    (tmp_path / "in" / "b.jsonl").write_text('{"product_id": "2", "title": "b"}\n')
    config.input.columns = {"title": "name"}
    plan = P.plan_run(str(tmp_path / "in"), str(tmp_path / "out"), config)
    assert plan.rows_total == 2
    (tmp_path / "in" / "c.jsonl").write_text('{"product_id": "3", "label": "c"}\n')
    with pytest.raises(io.InputError, match=r"^input\.columns\.title: column 'name' is not in .*c\.jsonl "
                                            r"\(columns: product_id, label\)$"):
        P.plan_run(str(tmp_path / "in"), str(tmp_path / "out2"), config)


# ---------------------------------------------------------------------------------------------------------------
# Byte order marks
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["bom.csv", "bom.jsonl", "bom.csv.gz"])
def test_a_utf8_byte_order_mark_is_not_part_of_the_first_column(tmp_path, name):
    text = ('product_id,title\n1,Red Shirt\n' if ".csv" in name
            else '{"product_id": "1", "title": "Red Shirt"}\n')
    data = b"\xef\xbb\xbf" + text.encode()
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    table = read_all(io.open_source(str(path), str(tmp_path / "_input"), {}, 64))
    assert table.select(["product_id", "title", PARSE_ERROR]).to_pylist() == [
        {"product_id": "1", "title": "Red Shirt", PARSE_ERROR: None}]


# ---------------------------------------------------------------------------------------------------------------
# Files that cannot be read
# ---------------------------------------------------------------------------------------------------------------
def gzip_cut_in_half() -> bytes:
    data = gzip.compress("".join(json.dumps({"product_id": str(i), "title": f"t {i}"}) + "\n"
                                 for i in range(2000)).encode())
    return data[: len(data) // 2]


@pytest.mark.parametrize("name, data, problem", [
    ("empty.parquet", b"", "not a readable Parquet file (Parquet file size is 0 bytes)"),
    ("garbage.parquet", b"hello", "not a readable Parquet file (Parquet file size is 5 bytes"),
    ("fake.jsonl.gz", b"plain text\n", "not a readable gzip file (zlib inflate failed: incorrect header check)"),
    ("trunc.jsonl.gz", gzip_cut_in_half(), "not a readable gzip file (Truncated compressed stream)"),
    ("array.json", b'[{"product_id":"1","title":"a"}]\n', "not JSON Lines (one JSON object per line) but a JSON array"),
    ("pretty.json", b'[\n {"product_id":"1","title":"a"},\n {"product_id":"2","title":"b"}\n]\n',
     "not JSON Lines (one JSON object per line) but a JSON array"),
])
def test_an_unreadable_input_is_one_line_naming_the_file(tmp_path, capsys, name, data, problem):
    path = tmp_path / name
    path.write_bytes(data)
    code, err, _ = validate(capsys, tmp_path, path)
    assert code == 2
    assert err.startswith(f"error: {path}: {problem}")
    assert err.count("\n") == 1


def test_a_truncated_gzip_keeps_no_partial_copy(tmp_path):
    path = tmp_path / "trunc.jsonl.gz"
    path.write_bytes(gzip_cut_in_half())
    with pytest.raises(io.InputError, match="Truncated compressed stream"):
        io.open_source(str(path), str(tmp_path / "_input"), {}, 64)
    assert not list(tmp_path.rglob(io.STAGED_MARKER))

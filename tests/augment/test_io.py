import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from augment import io
from augment.core import schema as S
from augment.core.names import PARSE_ERROR


def read_all(source, column_map=None):
    target = pa.schema([f for f in S.input_schema() ] + [f for f in source.schema if f.name not in S.INPUT_FIELDS.names])
    return io.read_source_rows(source, 0, source.num_rows, target, column_map or {})


def test_jsonl_rows_are_typed_and_extras_become_strings(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(
        json.dumps({"product_id": 7, "title": "Nike Shoe", "image_uri": "a.jpg", "stock": 3, "tags": ["x"]}) + "\n"
        + "\n"
        + json.dumps({"product_id": "b", "title": "Adidas Cap", "image_uri": "b.jpg"}) + "\n"
    )
    source = io.open_source(str(path), str(tmp_path / "_input"), {}, 64)
    table = read_all(source)
    assert source.num_rows == 2
    assert table.column("product_id").to_pylist() == ["7", "b"]
    assert table.column("stock").to_pylist() == ["3", None]
    assert table.column("tags").to_pylist() == ['["x"]', None]
    assert table.column(PARSE_ERROR).to_pylist() == [None, None]


def test_jsonl_bad_lines_become_rows_with_a_parse_error(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(
        b'{"product_id": "1", "title": "ok", "image_uri": "a.jpg"}\n'
        b'{"product_id": "2", "title": \n'
        b'{"product_id": "3", "title": 5}\n'
        b'[1, 2]\n'
        b'{"product_id": "4", "title": "caf\xe9"}\n'
    )
    source = io.open_source(str(path), str(tmp_path / "_input"), {}, 64)
    table = read_all(source)
    errors = table.column(PARSE_ERROR).to_pylist()
    assert errors[0] is None
    assert errors[1].startswith("invalid_json")
    assert errors[2] == "wrong_type:title (int)"
    assert errors[3] == "invalid_json (a list, not an object)"
    assert errors[4] == "invalid_utf8"
    assert table.column(S.RAW_ROW).to_pylist()[1] == '{"product_id": "2", "title": '


@pytest.mark.parametrize("compressed", [False, True])
def test_a_jsonl_line_over_the_limit_is_one_row_with_its_start_kept(tmp_path, monkeypatch, compressed):
    """A multi-GB line (or a gzip bomb of one) is skipped in pieces; the lines after it are read."""
    monkeypatch.setattr(io, "MAX_LINE_BYTES", 200)
    long_line = b'{"product_id": "2", "title": "' + b"x" * 5000 + b'"}\n'
    data = b'{"product_id": "1", "title": "a"}\n' + long_line + b'{"product_id": "3", "title": "' + b"y" * 150 + b'"}'
    path = tmp_path / ("in.jsonl.gz" if compressed else "in.jsonl")
    path.write_bytes(gzip.compress(data) if compressed else data)
    source = io.open_source(str(path), str(tmp_path / "_input"), {}, 64)
    table = read_all(source)
    assert table.column(PARSE_ERROR).to_pylist() == [None, "line_too_long (line 2: over 200 bytes)", None]
    assert table.column("title").to_pylist() == ["a", None, "y" * 150]
    assert table.column(S.RAW_ROW).to_pylist()[1].startswith('{"product_id": "2", "title": "xxx')


def test_csv_with_quoted_newlines_and_mapped_columns(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text('id,productDisplayName,image,brandName\n1,"Two\nlines",images/1.jpg,Nike\n2,Plain,images/2.jpg,\n')
    mapping = {"product_id": "id", "title": "productDisplayName", "brand": "brandName"}
    source = io.open_source(str(path), str(tmp_path / "_input"), mapping, 64)
    table = read_all(source, mapping)
    assert table.column("title").to_pylist() == ["Two\nlines", "Plain"]
    assert table.column("image_uri").to_pylist() == ["images/1.jpg", "images/2.jpg"]
    assert table.column("catalog_brand").to_pylist() == ["Nike", None]


def test_gzipped_jsonl(tmp_path):
    path = tmp_path / "in.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps({"product_id": "1", "title": "t"}) + "\n")
    source = io.open_source(str(path), str(tmp_path / "_input"), {}, 64)
    assert read_all(source).column("title").to_pylist() == ["t"]


def test_parquet_integer_ids_are_cast_and_wrong_title_type_is_a_row_error(tmp_path):
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"product_id": [1, 2], "title": [10, 20], "image": [b"x", b"y"]}), path)
    source = io.open_source(str(path), str(tmp_path / "_input"), {}, 64)
    table = read_all(source)
    assert table.column("product_id").to_pylist() == ["1", "2"]
    assert table.column("title").to_pylist() == [None, None]
    assert table.column(PARSE_ERROR).to_pylist() == ["wrong_type:title (int64)"] * 2


def test_parquet_with_huge_row_groups_is_restaged(tmp_path):
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"product_id": [str(i) for i in range(100)], "title": ["t"] * 100}), path, row_group_size=100)
    source = io.open_source(str(path), str(tmp_path / "_input"), {}, 10)
    assert source.read_uri != str(path)
    assert pq.ParquetFile(source.locate(0)[0]).metadata.num_row_groups == 10
    rows = io.read_source_rows(source, 35, 47, source.schema, {})
    assert rows.column("product_id").to_pylist() == [str(i) for i in range(35, 47)]


def test_a_restaged_input_is_cut_into_parts_of_bounded_footers(tmp_path, monkeypatch):
    monkeypatch.setattr(io, "PART_GROUPS", 3)  # parts of 3 shard-sized row groups: 30 rows
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"product_id": [str(i) for i in range(100)], "title": ["t"] * 100}), path, row_group_size=100)
    source = io.open_source(str(path), str(tmp_path / "_input"), {}, 10)
    files = source.read_files()
    assert len(files) == 4 and [pq.ParquetFile(f).metadata.num_rows for f in files] == [30, 30, 30, 10]
    assert all(pq.ParquetFile(f).metadata.num_row_groups <= 3 for f in files)
    assert source.locate(65) == (files[2], 60)
    rows = io.read_source_rows(source, 25, 95, source.schema, {})  # across three parts
    assert rows.column("product_id").to_pylist() == [str(i) for i in range(25, 95)]
    again = io.open_source(str(path), str(tmp_path / "_input"), {}, 10)  # a resume reads the marker, copies nothing
    assert (again.read_uri, again.part_rows, again.num_rows) == (source.read_uri, 30, 100)


def test_a_parquet_input_of_too_many_row_groups_is_restaged(tmp_path, monkeypatch):
    monkeypatch.setattr(io, "MAX_GROUPS_IN_PLACE", 4)
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"product_id": [str(i) for i in range(100)], "title": ["t"] * 100}), path, row_group_size=10)
    source = io.open_source(str(path), str(tmp_path / "_input"), {}, 10)
    assert source.read_uri != str(path) and source.part_rows
    assert io.read_column(source, "product_id", {}).to_pylist() == [str(i) for i in range(100)]


def test_missing_product_id_column_is_an_input_error(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("sku,title\n1,x\n")
    with pytest.raises(io.InputError, match="no product_id column"):
        io.open_source(str(path), str(tmp_path / "_input"), {}, 64)


def test_unknown_extension_is_an_input_error(tmp_path):
    path = tmp_path / "in.xlsx"
    path.write_text("x")
    with pytest.raises(io.InputError, match="cannot tell the format"):
        io.inputs(str(path))


def test_directory_input_lists_supported_files_sorted(tmp_path):
    for name in ("b.csv", "a.parquet", "notes.txt", "_hidden.csv"):
        (tmp_path / name).write_text("x")
    assert [f["uri"] for f in io.inputs(str(tmp_path))] == [str(tmp_path / "a.parquet"), str(tmp_path / "b.csv")]

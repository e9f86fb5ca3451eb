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
    assert errors[4] == "invalid_utf8 (line 5)"
    assert table.column(S.RAW_ROW).to_pylist()[1] == '{"product_id": "2", "title": '


def test_a_jsonl_object_that_names_a_key_twice_is_a_row_with_a_parse_error(tmp_path):
    """Which of two titles was meant cannot be told; json.loads would keep the last without a word."""
    path = tmp_path / "in.jsonl"
    path.write_text('{"product_id": "1", "title": "first", "title": "second"}\n'
                    '{"product_id": "2", "title": "ok", "attrs": {"size": "M", "size": "L"}}\n'
                    '{"product_id": "3", "title": "ok", "attrs": {"size": "M"}, "tags": [{"a": 1}, {"a": 2}]}\n')
    table = read_all(io.open_source(str(path), str(tmp_path / "_input"), {}, 64))
    assert table.column(PARSE_ERROR).to_pylist() == [
        'invalid_json (the key "title" is given twice)', 'invalid_json (the key "size" is given twice)', None]
    assert table.column("title").to_pylist()[2] == "ok"


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


def test_jsonl_lines_json_reads_but_utf8_cannot_hold_or_python_cannot_parse_are_rows_with_a_parse_error(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(
        '{"product_id": "1", "title": "Nike \\ud83d\\ude00"}\n'  # a whole pair: one character
        + '{"product_id": "2", "title": "Nike \\ud800"}\n'  # half a pair
        + '{"product_id": "3", "\\udc00": 1}\n'  # in a key
        + '{"product_id": "4", "x": ' + "[" * 100_000 + "]" * 100_000 + '}\n'
        + '{"product_id": "5", "n": 1' + "0" * 5000 + '}\n'
        + '{"product_id": "6", "title": "back\\\\ud800slash"}\n'  # an escaped backslash, then text
    )
    source = io.open_source(str(path), str(tmp_path / "_input"), {}, 64)
    table = read_all(source)
    assert table.column(PARSE_ERROR).to_pylist() == [
        None,
        "invalid_utf8 (line 2: an escape of half a surrogate pair)",
        "invalid_utf8 (line 3: an escape of half a surrogate pair)",
        "invalid_json (line 4: nested too deep)",
        "invalid_json (line 5: Exceeds the limit (4300 digits) for integer string conversion)",
        None,
    ]
    assert table.column("title").to_pylist() == ["Nike \U0001F600", None, None, None, None, "back\\ud800slash"]
    assert table.column(S.RAW_ROW).to_pylist()[1] == '{"product_id": "2", "title": "Nike \\ud800"}'


def test_a_csv_field_over_the_limit_is_skipped_to_its_closing_quote(tmp_path):
    """The lines of the quoted field are not read as rows of their own (they would be products no one wrote)."""
    path = tmp_path / "in.csv"
    path.write_text('product_id,title,description\n1,Nike,ok\n'
                    f'2,Adidas,"{"x" * 140_000}\nfake,Not a product,""quoted""\nend"\n'
                    '3,Puma,ok\n')
    source = io.open_source(str(path), str(tmp_path / "_input"), {}, 64)
    table = read_all(source)
    assert table.column("product_id").to_pylist() == ["1", None, "3"]
    assert table.column(PARSE_ERROR).to_pylist() == [
        None, "csv_field_too_large (line 3: field larger than field limit 131072)", None]
    assert table.column(S.RAW_ROW).to_pylist()[1].startswith('2,Adidas,"xxx')


@pytest.mark.parametrize("end", ["\n", ""])
def test_a_csv_quote_left_open_to_the_end_is_one_row_and_the_rows_after_its_line_are_read(tmp_path, end):
    path = tmp_path / "in.csv"
    path.write_text(f'product_id,title\n1,"Nike, ""Air"""\n2,"Adidas\n3,Puma\n4,Asics{end}')  # a file cut short
    source = io.open_source(str(path), str(tmp_path / "_input"), {}, 64)
    table = read_all(source)
    assert table.column("product_id").to_pylist() == ["1", None, "3", "4"]
    assert table.column("title").to_pylist() == ['Nike, "Air"', None, "Puma", "Asics"]
    assert table.column(PARSE_ERROR).to_pylist()[1] == (
        "invalid_csv (line 3: a quoted field is not closed before the end of the file; the lines after it are read "
        "as rows)")
    assert table.column(S.RAW_ROW).to_pylist()[1] == '2,"Adidas'


def test_jsonl_data_urls_are_read_as_written_in_the_wild_and_others_say_why_not(tmp_path):
    import base64

    data = bytes(range(256)) * 3
    plain = base64.b64encode(data).decode()
    urls = [
        f"data:image/jpeg;base64,{plain}",
        f"DATA:image/jpeg;BASE64,{plain}",  # the scheme and the token in any case
        f"data:image/jpeg;base64,{base64.encodebytes(data).decode()}",  # line breaks every 76 characters
        f"data:image/jpeg;base64,{base64.urlsafe_b64encode(data).decode().rstrip('=')}",  # URL-safe, unpadded
        f"data:image/jpeg;name={'x' * 200};base64,{plain}",  # a long parameter before `;base64`
        "data:image/jpeg,%FF%D8",  # percent-encoded, not base64
        "data:image/jpeg;base64,@@@@",
        "data:image/jpeg;base64",
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"product_id": str(i), "title": "t", "image": url}) + "\n"
                            for i, url in enumerate(urls)))
    table = read_all(io.open_source(str(path), str(tmp_path / "_input"), {}, 64))
    assert table.column("image").to_pylist() == [data] * 5 + [None] * 3
    assert table.column("image_uri").to_pylist() == [None] * 8  # none of them is taken for a path
    assert table.column(PARSE_ERROR).to_pylist() == [None] * 5 + [
        "image_bad_data_url (not base64 (data:image/<type>;base64,<data>))",
        "image_bad_data_url (its base64 does not decode: Only base64 data is allowed)",
        "image_bad_data_url (no comma ends its header (data:image/<type>;base64,<data>))",
    ]


@pytest.mark.parametrize("header, problem", [
    ("product_id;title;image_uri", "its header looks separated by ';': CSV files are read comma-separated"),
    ("product_id,title,title", "the header names column 'title' twice"),
])
def test_a_csv_header_that_cannot_be_meant_is_an_input_error(tmp_path, header, problem):
    path = tmp_path / "in.csv"
    path.write_text(f"{header}\n1;Nike;a.jpg\n")
    with pytest.raises(io.InputError, match=problem.replace("(", r"\(")):
        io.open_source(str(path), str(tmp_path / "_input"), {}, 64)


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


def test_a_value_of_the_wrong_type_is_named_by_the_column_the_input_has(tmp_path):
    """`brand` is carried as catalog_brand and input.columns maps `name` to title: the reason names `brand` and
    `name`, the columns a user finds in the file, in text and Parquet inputs alike."""
    mapping = {"title": "name"}
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"product_id": "1", "name": "Cap", "brand": 7, "image_uri": "a.jpg"}) + "\n"
                    + json.dumps({"product_id": "2", "name": 5, "image_uri": "a.jpg"}) + "\n")
    table = read_all(io.open_source(str(path), str(tmp_path / "_input"), mapping, 64))
    assert table.column(PARSE_ERROR).to_pylist() == ["wrong_type:brand (int)", "wrong_type:name (int)"]
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"product_id": ["1"], "name": ["Cap"], "brand": [7], "image_uri": ["a.jpg"]}), path)
    table = read_all(io.open_source(str(path), str(tmp_path / "_input2"), mapping, 64))
    assert table.column(PARSE_ERROR).to_pylist() == ["wrong_type:brand (int64)"]
    assert table.column("catalog_brand").to_pylist() == [None]


def test_parquet_text_image_column_names_images_as_pandas_and_arrow_write_it(tmp_path):
    """pandas writes strings as large_string: a path in `image` is an image_uri whatever the string type; a row
    that also has an image_uri is quarantined, and one with only its image_uri is not."""
    for type_ in (pa.string(), pa.large_string(), pa.string_view()):
        path = tmp_path / f"{type_}.parquet"
        pq.write_table(pa.table({"product_id": ["1", "2"], "title": ["t", "t"],
                                 "image": pa.array(["a.jpg", None], type_)}), path)
        table = read_all(io.open_source(str(path), str(tmp_path / "_input"), {}, 64))
        assert table.column("image_uri").to_pylist() == ["a.jpg", None], type_
        assert table.column(PARSE_ERROR).to_pylist() == [None, None]
    path = tmp_path / "both.parquet"
    pq.write_table(pa.table({"product_id": ["1", "2", "3"], "title": ["t"] * 3,
                             "image": pa.array(["a.jpg", None, "c.jpg"], pa.large_string()),
                             "image_uri": ["x.jpg", "b.jpg", None]}), path)
    table = read_all(io.open_source(str(path), str(tmp_path / "_input"), {}, 64))
    assert table.column("image_uri").to_pylist() == ["x.jpg", "b.jpg", "c.jpg"]
    assert table.column(PARSE_ERROR).to_pylist() == [
        "wrong_type:image (a path while image_uri is also set)", None, None]


def test_parquet_product_ids_of_every_string_type_are_read(tmp_path):
    for type_ in (pa.string(), pa.large_string(), pa.string_view()):
        path = tmp_path / f"{type_}.parquet"
        pq.write_table(pa.table({"product_id": pa.array(["1"], type_), "title": ["t"], "image": [b"x"]}), path)
        table = read_all(io.open_source(str(path), str(tmp_path / "_input"), {}, 64))
        assert (table.column("product_id").to_pylist(), table.column(PARSE_ERROR).to_pylist()) == (["1"], [None])


def test_parquet_invalid_utf8_product_id_is_one_row_error_and_plans(tmp_path):
    """Writers other than Arrow do not always validate strings: the id is read as null, and the duplicate check
    of the plan reads the column too."""
    import numpy as np

    from augment import config as C
    from augment import plan as P

    raw = [b"a", b"b\xff", b"a"]
    offsets = np.cumsum([0] + [len(x) for x in raw]).astype(np.int32)
    ids = pa.Array.from_buffers(pa.string(), 3, [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"".join(raw))])
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"product_id": ids, "title": ["t"] * 3, "image": [b"x"] * 3}), path)
    table = read_all(io.open_source(str(path), str(tmp_path / "_input"), {}, 64))
    assert table.column("product_id").to_pylist() == ["a", None, "a"]
    assert table.column(PARSE_ERROR).to_pylist() == [None, "invalid_utf8 (column product_id)", None]
    config = C.load(check_stages=False)
    plan = P.plan_run(str(path), str(tmp_path / "out"), config, write=False)
    assert [s.duplicate_rows for s in plan.shards] == [[2]]


def test_parquet_columns_named_like_the_readers_bookkeeping_are_not_taken_for_it(tmp_path):
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"product_id": ["1", "2"], "title": ["t", "t"], "image": [b"x", b"y"],
                             "_parse_error": [0, 1], "_raw": ["mine", "mine"]}), path)
    source = io.open_source(str(path), str(tmp_path / "_input"), {}, 64)
    assert source.read_uri != source.uri and source.not_carried == ["_parse_error", "_raw"]  # restaged without them
    table = read_all(source)
    assert table.column(PARSE_ERROR).to_pylist() == [None, None]
    assert table.column(S.RAW_ROW).to_pylist() == [None, None]


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


def test_a_staged_part_cut_short_is_named_with_the_way_to_stage_it_again(tmp_path):
    """The resume stopped with 'Parquet file size is 6 bytes, smaller than the minimum file footer', naming no file."""
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"product_id": [str(i) for i in range(100)], "title": ["t"] * 100}), path, row_group_size=100)
    run = tmp_path / "run"
    source = io.open_source(str(path), str(run / "_input"), {}, 10)
    part = source.locate(0)[0]
    with open(part, "r+b") as f:
        f.truncate(6)
    io._FOOTERS.clear()
    with pytest.raises(io.InputError, match=rf"^{part}: not a readable Parquet file \(.*\); it is a staged part of the "
                                            rf"input: delete {run}/_input and run the same command again"):
        io.read_source_rows(source, 0, 10, source.schema, {})


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

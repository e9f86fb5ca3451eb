"""Input columns named like the columns the pipeline writes: carried through as `input_<name>`, values unchanged."""
import json

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from augment import cli, io, plan as P, runner
from augment.core import manifest
from augment import config as C
from augment.core import schema as S

# Every name the pipeline writes into a data or quarantine shard, except `brand` (the contract's catalogue brand).
CLASHING = sorted(S.WRITTEN_COLUMNS - {"brand"})


def _clashing_columns(n: int) -> dict[str, pa.Array]:
    """One column per written name, of assorted types (Parquet keeps them), a distinct value per row."""
    columns = {}
    for k, name in enumerate(CLASHING):
        if k % 3 == 0:
            columns[name] = pa.array([i * 100 + k for i in range(n)], pa.int64())
        elif k % 3 == 1:
            columns[name] = pa.array([[f"{name}-{i}", "x"] for i in range(n)], pa.list_(pa.string()))
        else:
            columns[name] = pa.array([f"{name} value {i}" for i in range(n)], pa.string())
    return columns


@pytest.fixture(scope="module")
def clashing_catalogue(tmp_path_factory, sample_path):
    """The first 6 products of the bundled sample, one with an empty title (quarantined), plus the clashing columns."""
    table = pq.read_table(sample_path).slice(0, 6)
    titles = table.column("title").to_pylist()
    titles[2] = ""
    table = table.set_column(table.column_names.index("title"), "title", pa.array(titles, pa.string()))
    for name, column in _clashing_columns(table.num_rows).items():
        table = table.append_column(name, column)
    path = tmp_path_factory.mktemp("clash") / "catalogue.parquet"
    pq.write_table(table, path)
    return path, table


@pytest.fixture(scope="module")
def clashing_run(clashing_catalogue, tmp_path_factory):
    path, table = clashing_catalogue
    out = tmp_path_factory.mktemp("clash-run") / "run"
    config = C.load()
    config.run.progress = False
    config.run.shard_size = 4
    plan = P.plan_run(str(path), str(out), config)
    runner.execute(plan, config, use_ray=False)
    return out, plan, table


def test_every_written_column_name_is_carried_as_input_prefix_with_its_values(clashing_run):
    out, plan, source = clashing_run
    assert plan.renamed_columns == {name: f"input_{name}" for name in CLASHING}
    data = pads.dataset(str(out / "data")).to_table()
    quarantine = pads.dataset(str(out / "quarantine")).to_table()
    assert data.num_rows == 5 and quarantine.num_rows == 1
    by_id = {pid: i for i, pid in enumerate(source.column("product_id").to_pylist())}
    for shard in (data, quarantine):
        rows = [by_id[pid] for pid in shard.column("product_id").to_pylist()]
        for name in CLASHING:
            carried = shard.column(f"input_{name}")
            assert carried.type == source.schema.field(name).type, name
            assert carried.to_pylist() == source.column(name).take(rows).to_pylist(), name
    # the pipeline's own columns keep their types and meaning
    assert data.schema.field("color").type == pa.list_(pa.string())
    assert data.column("lineage").to_pylist()[0]["shard_id"]
    assert quarantine.column("reason").to_pylist() == ["empty_title"]
    assert data.column("catalog_brand").to_pylist() == [
        source.column("brand")[by_id[pid]].as_py() for pid in data.column("product_id").to_pylist()]


def test_the_run_folder_after_a_clashing_catalogue_is_usable(clashing_run):
    out, plan, _ = clashing_run
    records = manifest.load(str(out))
    assert len(records) == len(plan.shards) == 2
    assert sum(r.rows_in for r in records.values()) == 6
    assert len(manifest.data_files(str(out))) == 2


def test_dry_run_names_the_renamed_columns(clashing_catalogue, tmp_path, capsys):
    path, _ = clashing_catalogue
    assert cli.main(["run", "--input", str(path), "--output", str(tmp_path / "run"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "carried as: background_prompts -> input_background_prompts, category -> input_category, " in out
    assert "color -> input_color" in out
    assert cli.main(["run", "--input", str(path), "--output", str(tmp_path / "run"), "--dry-run", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["renamed_columns"]["entities"] == "input_entities"


def test_text_formats_rename_too_and_underscore_columns_are_not_carried(tmp_path):
    path = tmp_path / "catalogue.jsonl"
    rows = [{"product_id": f"p{i}", "title": f"Red Shirt {i}", "image_uri": "x.jpg", "color": "Red",
             "reason": "gift", "_internal": "7", "_raw": "not the pipeline's"} for i in range(3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = P.plan_run(str(path), str(tmp_path / "run"), C.load(), write=False, work_uri=str(tmp_path / "work"))
    assert plan.summary()["renamed_columns"] == {"color": "input_color", "reason": "input_reason"}
    assert plan.summary()["not_carried_columns"] == ["_internal", "_raw"]
    table = io.read_source_rows(plan.sources[0], 0, 3, plan.input_schema, {})
    assert table.column("input_color").to_pylist() == ["Red"] * 3
    assert table.column(S.RAW_ROW).to_pylist() == [None] * 3  # the input's `_raw` is not taken for the pipeline's
    # a second plan reads the staged file and still knows what was renamed
    again = P.plan_run(str(path), str(tmp_path / "run"), C.load(), write=False, work_uri=str(tmp_path / "work"))
    assert again.renamed_columns == {"color": "input_color", "reason": "input_reason"}


def test_an_input_with_both_color_and_input_color_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "catalogue.parquet"
    pq.write_table(pa.table({"product_id": ["a"], "title": ["Red Shirt"], "image_uri": ["x.jpg"],
                             "color": ["Red"], "input_color": ["Rot"]}), path)
    with pytest.raises(io.InputError, match="'color' and 'input_color' would both be named 'input_color'"):
        P.plan_run(str(path), str(tmp_path / "run"), C.load(), write=False, work_uri=str(tmp_path / "work"))
    assert cli.main(["run", "--input", str(path), "--output", str(tmp_path / "run"), "--dry-run"]) == 2
    assert "would both be named 'input_color'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_output_schema_refuses_a_repeated_column():
    with pytest.raises(ValueError, match="'color' is both"):
        S.output_schema(pa.schema([pa.field("color", pa.string())]))
    assert S.carried_name("color") == "input_color" and S.carried_name("base_colour") == "base_colour"

"""What training and evaluation check before they read a run's shards: every shard's schema and Parquet footer,
the label columns, the images, and whether the run is finished. Functions on small shards; no Ray."""
import json
import logging

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from augment.cli import main
from augment.core import schema as S
from model.config import ConfigError, load_config
from model.data import Skipped, checked_label_columns, is_held_out, product_records
from model.evaluate import ProtocolError, evaluation_inputs, split_records
from model.train import count_split, training_dataset
from model.validate import Validator
from tests.model.shards import product_image, product_rows, write_run


def shards(run):
    return sorted(str(p) for p in (run / "data").glob("*.parquet"))


def rewrite(path, change) -> None:
    """Rewrite a shard with `change(table)` applied, keeping its schema version."""
    table = pq.read_table(path)
    meta = table.schema.metadata
    pq.write_table(change(table).replace_schema_metadata(meta), path)


def with_column(table: pa.Table, name: str, values) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)


def columns(rows):
    return {key: [row[key] for row in rows] for key in rows[0]}


CHANGES = {
    "missing": (lambda t: t.drop_columns(["title"]), "column 'title' is missing (expected string)"),
    "title int64": (lambda t: with_column(t, "title", pa.array(range(t.num_rows), pa.int64())),
                    "column 'title' has type int64, expected string"),
    "product_id int64": (lambda t: with_column(t, "product_id", pa.array(range(t.num_rows), pa.int64())),
                         "column 'product_id' has type int64, expected string"),
    "variants string": (lambda t: with_column(t, "variants", pa.array(["x"] * t.num_rows)),
                        "column 'variants' has type string, expected list<item: struct<kind: string"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("which", [0, -1])
def test_every_shard_is_checked_not_only_the_first(tmp_path, change, which):
    run = write_run(tmp_path / "run", product_rows(30), shard_size=10)
    shard = shards(run)[which]
    alter, says = CHANGES[change]
    rewrite(shard, alter)
    cfg = load_config("tiny")
    for read in (lambda: count_split(shards(run), cfg, str(run)), lambda: split_records(str(run), 0.2),
                 lambda: checked_label_columns(shards(run), cfg.data.query_attributes)):
        with pytest.raises(S.ShardError) as refused:
            read()
        assert str(refused.value).startswith(f"{shard}: {says}")


def test_the_training_dataset_checks_every_shard_before_ray_reads_one(tmp_path):
    run = write_run(tmp_path / "run", product_rows(30), shard_size=10)
    shard = shards(run)[-1]
    rewrite(shard, lambda t: t.drop_columns(["title"]))
    with pytest.raises(S.ShardError, match=f"^{shard}: column 'title' is missing"):
        training_dataset(shards(run), load_config("tiny"))  # raised before any Ray call: no Ray starts


@pytest.mark.parametrize("damage", ["truncated", "zeroed"])
def test_a_corrupted_shard_is_named_in_one_line(tmp_path, capsys, damage):
    run = write_run(tmp_path / "run", product_rows(30), shard_size=10)
    first, second = shards(run)[1:]
    for shard in (first, second):
        data = open(shard, "rb").read()
        corrupted = data[: len(data) // 2] if damage == "truncated" else data[:4] + bytes(len(data) - 8) + data[-4:]
        open(shard, "wb").write(corrupted)
    with pytest.raises(S.ShardError, match=f"^{first}: not a readable Parquet file: "):  # the first in order
        split_records(str(run), 0.2)
    assert main(["train", "--data", str(run), "--output", str(tmp_path / "ckpt")]) == 2
    assert main(["eval", "--data", str(run), "--bow"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith(f"error: {first}: not a readable Parquet file: ") for line in lines)
    assert not (tmp_path / "ckpt").exists()


def damage_a_page(shard: str) -> None:
    """Garble the middle of a shard, its footer intact: the footer checks pass, reading the data fails."""
    data = bytearray(open(shard, "rb").read())
    for i in range(len(data) // 4, len(data) // 2):
        data[i] = (data[i] * 7 + 13) % 256
    open(shard, "wb").write(bytes(data))


def test_a_damaged_page_behind_an_intact_footer_is_named_with_how_to_write_it_again(tmp_path, capsys):
    run = write_run(tmp_path / "run", product_rows(30), shard_size=10)
    shard = shards(run)[1]
    damage_a_page(shard)
    assert S.read_shard_schema(shard)  # the footer still reads
    with pytest.raises(S.ShardError, match=rf"^{shard}: cannot be read \(.+\); if the file is damaged, delete it and "
                                           r"resume the run \(moon run with the run's --output\)") as refused:
        split_records(str(run), 0.2)  # what moon eval and the trainer's validation read
    assert main(["eval", "--data", str(run), "--bow"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {refused.value}"]


@pytest.mark.slow  # Ray Data
def test_a_damaged_page_read_by_ray_data_is_named_in_one_line(tmp_path, ray_local):
    run = write_run(tmp_path / "run", product_rows(30), shard_size=10)
    shard = shards(run)[2]
    damage_a_page(shard)
    with pytest.raises(S.ShardError, match=rf"^{shard}: cannot be read \(.+\); if the file is damaged, delete it"):
        training_dataset(shards(run), load_config("tiny"))  # tiny reads the shards once, in the driver


def test_a_label_column_of_two_types_is_refused(tmp_path):
    run = write_run(tmp_path / "run", product_rows(20), shard_size=10)
    shard = shards(run)[1]
    rewrite(shard, lambda t: with_column(t, "gender", pa.array(range(t.num_rows), pa.int64())))
    assert checked_label_columns(shards(run), ["base_colour"]) == ("base_colour",)  # not read: not checked
    with pytest.raises(S.ShardError, match=f"^{shard}: column 'gender' has type int64, string in the shards before"):
        checked_label_columns(shards(run), ["gender"])


def test_image_bytes_that_do_not_decode_are_skipped_and_counted():
    rows = product_rows(4)
    rows[0]["image"] = b"garbage"
    rows[1]["image"] = rows[1]["image"][: len(rows[1]["image"]) // 3]  # a truncated JPEG
    rows[2]["variants"][0]["image"] = b"not an image"
    skipped = Skipped()
    records = product_records(columns(rows), skipped=skipped)
    assert [r["product_id"] for r in records] == ["p0002", "p0003"]
    assert skipped.reasons == {"undecodable": 2} and skipped.variants == 1
    assert records[0]["variant_kinds"] == ["angle"]  # the subject variant that does not open is left out
    assert skipped.describe() == ("2 products skipped: 2 whose image cannot be decoded (e.g. p0000, p0001); "
                                  "1 variant images left out: they cannot be read or decoded")
    evaluation_inputs(records, load_config("tiny", {"data.eval_queries": "title"}))  # decodes every image left


def test_an_image_uri_file_corrupted_after_the_run_is_skipped(tmp_path, caplog):
    rows = product_rows(2)
    (tmp_path / "a.jpg").write_bytes(b"\0" * 64)
    rows[0]["image"], rows[0]["image_uri"] = None, str(tmp_path / "a.jpg")
    rows[1]["image"], rows[1]["image_uri"] = None, str(tmp_path / "missing.jpg")
    with caplog.at_level(logging.WARNING, logger="model.data"):
        assert product_records(columns(rows)) == []
    assert caplog.text.count("\n") == 1  # one warning line for the batch
    assert ("2 products skipped: 1 whose image_uri cannot be read, 1 whose image cannot be decoded (e.g. p0000, "
            "p0001)") in caplog.text


def test_a_relative_image_uri_is_read_from_the_input_files_folder(tmp_path, monkeypatch):
    """Where the validate stage read it (a CSV naming images/1.jpg), whatever folder the trainer runs in."""
    rows = product_rows(2)
    (tmp_path / "catalogue" / "images").mkdir(parents=True)
    (tmp_path / "catalogue" / "images" / "1.jpg").write_bytes(rows[0]["image"])
    for row, uri in zip(rows, ("images/1.jpg", "https://example.com/2.jpg")):
        row["image"], row["image_uri"] = None, uri
        row["lineage"] = row["lineage"] | {"source_uri": str(tmp_path / "catalogue" / "products.csv")}
    monkeypatch.chdir(tmp_path)
    skipped = Skipped()
    records = product_records(columns(rows), skipped=skipped)
    image = (tmp_path / "catalogue" / "images" / "1.jpg").read_bytes()
    assert [(r["product_id"], r["image"]) for r in records] == [("p0000", image)]
    assert skipped.reasons == {"unreadable": 1}  # a scheme the validate stage refuses is never fetched


def null_images(run, shard_index=None) -> None:
    for i, shard in enumerate(shards(run)):
        if shard_index is None or i == shard_index:
            rewrite(shard, lambda t: with_column(t, "image", pa.nulls(t.num_rows, pa.binary())))


def test_count_split_counts_only_products_with_an_image(tmp_path, caplog):
    run = write_run(tmp_path / "run", product_rows(60), shard_size=20)
    null_images(run, 0)
    cfg = load_config("tiny", {"train.batch_size": 4})
    ids = [f"p{i:04d}" for i in range(20, 60)]
    with caplog.at_level(logging.WARNING):
        counts = count_split(shards(run), cfg, str(run))
    assert counts == (sum(not is_held_out(p, 0.2) for p in ids), sum(is_held_out(p, 0.2) for p in ids))
    assert f"20 of the 60 products of {run} have no image (image and image_uri null) and are skipped" in caplog.text


def repeating_run(tmp_path):
    """60 products in shards of 20, of which p0005 again in the third shard, and p0030 twice more in its own."""
    rows = product_rows(60)
    rows[45] = dict(rows[5], title="a later copy")
    rows[31] = rows[38] = dict(rows[30], title="a copy in the same shard")
    return write_run(tmp_path / "run", rows, shard_size=20)


def test_a_product_id_that_shards_repeat_is_counted_and_read_once_from_its_first_row(tmp_path, caplog):
    """Shards of other writers, or merged runs: a product trained twice is its own copy's in-batch negative."""
    from model.train import ReadWithout, repeats_of

    run = repeating_run(tmp_path)
    ids = {f"p{i:04d}" for i in range(60)} - {"p0045", "p0031", "p0038"}
    with caplog.at_level(logging.WARNING):
        counts = count_split(shards(run), load_config("tiny", {"train.batch_size": 4}), str(run))
    assert counts == (sum(not is_held_out(p, 0.2) for p in ids), sum(is_held_out(p, 0.2) for p in ids))
    assert f"3 rows of {run} repeat the product id of an earlier row" in caplog.text
    assert "e.g. p0030, p0005" in caplog.text
    repeats = repeats_of(shards(run), 0.2)
    assert repeats.rows == {shards(run)[1]: (11, 18), shards(run)[2]: (5,)}
    read = ReadWithout(["product_id", "title"])
    table = read(pa.table({"file": shards(run)[1:], "drop": [[11, 18], [5]]}))
    assert table.column("product_id").to_pylist() == ([f"p{i:04d}" for i in range(20, 40) if i not in (31, 38)]
                                                      + [f"p{i:04d}" for i in range(40, 60) if i != 45])
    assert "a copy in the same shard" not in table.column("title").to_pylist()
    unique = write_run(tmp_path / "unique", product_rows(60), shard_size=20)
    assert not repeats_of(shards(unique), 0.2)  # read now: count_split did not see these files


@pytest.mark.slow  # Ray Data
def test_the_training_dataset_holds_each_product_once(tmp_path, ray_local):
    run = repeating_run(tmp_path)
    records = training_dataset(shards(run), load_config("tiny")).take_all()
    unique = {f"p{i:04d}" for i in range(60)} - {"p0045", "p0031", "p0038"}
    assert sorted(r["product_id"] for r in records) == sorted(p for p in unique if not is_held_out(p, 0.2))
    assert {"p0005", "p0030"} <= {r["product_id"] for r in records}  # the repeated ones are in the training split
    assert not {"a later copy", "a copy in the same shard"} & {r["title"] for r in records}


def test_products_without_a_title_are_counted_out_and_named_before_ray_starts(tmp_path, caplog):
    run = write_run(tmp_path / "run", product_rows(60), shard_size=20)
    rewrite(shards(run)[0], lambda t: with_column(t, "title", pa.array([" "] * t.num_rows, pa.string())))
    ids = [f"p{i:04d}" for i in range(20, 60)]
    with caplog.at_level(logging.WARNING):
        counts = count_split(shards(run), load_config("tiny", {"train.batch_size": 4}), str(run))
    assert counts == (sum(not is_held_out(p, 0.2) for p in ids), sum(is_held_out(p, 0.2) for p in ids))
    assert f"20 of the 60 products of {run} have no title (title null or blank) and are skipped" in caplog.text
    for shard in shards(run):
        rewrite(shard, lambda t: with_column(t, "title", pa.nulls(t.num_rows, pa.string())))
    with pytest.raises(ProtocolError, match=r"^0 training products of .* have a title and an image, fewer than one "
                                            r"step's 32: \d+ of the \d+ have no title \(title null or blank\); "
                                            r"nothing to train on$"):
        count_split(shards(run), load_config("tiny"), str(run))


def test_products_without_images_are_named_as_why_training_cannot_start(tmp_path):
    run = write_run(tmp_path / "run", product_rows(60), shard_size=20)
    null_images(run)
    with pytest.raises(ProtocolError, match=r"^0 training products of .* have an image, fewer than one step's 32: "
                                            r"\d+ of the \d+ have no image \(image and image_uri null\); nothing to "
                                            r"train"):
        count_split(shards(run), load_config("tiny"), str(run))
    cfg = load_config("tiny", {"train.batch_size": 2})
    null_images(run)
    for i, shard in enumerate(shards(run)):  # training products keep their images, held-out ones lose them
        rewrite(shard, lambda t: with_column(t, "image", pa.array(
            [None if is_held_out(p, 0.2) else product_image(0, (0, 0, 0))
             for p in t.column("product_id").to_pylist()], pa.binary())))
    with pytest.raises(ProtocolError, match=r"^0 held-out products of .* have an image: too few to validate on"):
        count_split(shards(run), cfg, str(run))
    with pytest.raises(ConfigError, match=r"^0 held-out products with a usable image in .*: nothing to validate "
                                          r"on; \d+ products skipped: \d+ without an image"):
        Validator(str(run), cfg)


def test_moon_eval_names_the_images_and_the_limit_as_why_too_few_products_are_left(tmp_path, capsys):
    run = write_run(tmp_path / "run", product_rows(100), shard_size=50)
    assert main(["eval", "--data", str(run), "--bow", "--limit", "5"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "moon eval: --limit 5 evaluates 5 products: recall@10 would be meaningless; raise --limit to 10 or more")
    null_images(run)
    assert main(["eval", "--data", str(run), "--bow"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    held = sum(is_held_out(f"p{i:04d}", 0.2) for i in range(100))
    assert last == (f"moon eval: only 0 held-out products in {run} have a usable image ({held} products skipped: "
                    f"{held} without an image (image and image_uri null)); recall@10 would be meaningless")


def test_a_missing_category_label_points_to_category_leaf_when_shards_have_a_category_path(tmp_path, caplog):
    import pyarrow.parquet as pq

    rows = [{k: v for k, v in row.items() if k != "article_type"} for row in product_rows(20)]
    run = write_run(tmp_path / "run", rows, shard_size=20)
    assert "category_path" in pq.read_schema(next((run / "data").glob("*.parquet"))).names
    with caplog.at_level(logging.WARNING):
        split_records(str(run), 0.2, attributes=("base_colour", "article_type"))
    assert "has the column 'article_type': attribute queries use base_colour; `category_leaf` reads the last level " \
           "of category_path instead" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        split_records(str(run), 0.2, attributes=("category_leaf", "article_typ"))
    assert "article_typ" in caplog.text and "category_leaf` reads" not in caplog.text  # already asked for


def test_label_columns_no_shard_has_are_named_and_not_used(tmp_path, capsys, caplog):
    run = write_run(tmp_path / "run", product_rows(100), shard_size=50)
    with caplog.at_level(logging.WARNING):
        records = split_records(str(run), 0.2, attributes=("gendr", "base_colour"))
    assert records.attributes == ("base_colour",)
    assert all(len(r["labels"]) == 1 for r in records)
    assert (f"data.query_attributes: no shard of {run} has the column 'gendr' (did you mean 'gender'?): attribute "
            "queries use base_colour") in caplog.text
    out = tmp_path / "e.json"
    code = main(["eval", "--data", str(run), "--bow", "--query-attributes", "gendr,base_colour", "--out", str(out)])
    assert code == 0
    assert "text queries: attribute queries (base_colour)" in capsys.readouterr().out
    assert json.loads(out.read_text())["query_attributes"] == ["base_colour"]


def save_plan(run, shards_planned: int) -> None:
    """A saved plan's header (augment/plan.py) that plans `shards_planned` shards."""
    from augment import plan as P

    (run / P.PLAN_DIR).mkdir()
    (run / P.PLAN_DIR / P.PLAN_FILE).write_text(json.dumps({
        "format": P.PLAN_FORMAT, "shards": shards_planned, "input_uri": "in.parquet",
        "identity": {"limit": 48, "shard_size": 10}}))


def test_a_run_with_planned_shards_not_committed_is_read_with_a_warning(tmp_path, caplog):
    run = write_run(tmp_path / "run", product_rows(30), shard_size=10)
    save_plan(run, 3)
    cfg = load_config("tiny", {"train.batch_size": 2})
    with caplog.at_level(logging.WARNING):
        split_records(str(run), 0.2)
        count_split(shards(run), cfg, str(run))
    assert "planned shards" not in caplog.text  # finished
    (run / "_plan" / "plan.json").unlink()
    (run / "_plan").rmdir()
    save_plan(run, 5)
    with caplog.at_level(logging.WARNING):
        split_records(str(run), 0.2)
        count_split(shards(run), cfg, str(run))
    said = (f"{run}: 3 of its 5 planned shards are committed (the run is unfinished, or still running), and only "
            f"those are read; to read every product, resume it (`moon run --input in.parquet --output {run} "
            "--limit 48 --shard-size 10` with its config, or its remaining --batch jobs)")
    assert [r.getMessage() for r in caplog.records if "planned shards" in r.getMessage()] == [said]  # said once


def test_training_records_report_only_what_the_driver_could_not_count(caplog):
    """A row without an image is counted once for the run by count_split, on the driver; each read batch warns
    only of what reading the images finds (an image that does not decode)."""
    from model.train import ToRecords

    rows = product_rows(3)
    rows[0]["image"] = None
    rows[1]["image"] = b"garbage"
    table = pa.Table.from_pylist(rows)
    with caplog.at_level(logging.WARNING, logger="model"):
        records = ToRecords(0.0)(table)
    assert records.column("product_id").to_pylist() == [rows[2]["product_id"]]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["1 products skipped: 1 whose image cannot be decoded"]


def test_a_run_whose_shards_hold_no_rows_is_nothing_to_train_on(tmp_path):
    """Neither a larger held-out share nor a smaller batch can help: the message says so, before Ray starts."""
    from model.train import train

    run = write_run(tmp_path / "run", product_rows(40), shard_size=20)
    for shard in shards(run):
        rewrite(shard, lambda t: t.slice(0, 0))
    with pytest.raises(ConfigError, match=f"^0 products with a title and an image in the 2 shards of {run}: nothing "
                                          "to train on$"):
        train(str(run), load_config("tiny", {"train.epochs": 1}), tmp_path / "out")

"""What the report reads: run facts, the deterministic sample, quarantine examples."""
import pytest

from augment.ops.report import collect
from tests.augment.ops.report.synthetic_run import SECONDS_PER_SHARD, build_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("collect") / "run"
    build_run(path, products=25, shard_size=10, quarantine={"empty_title": 5, "image_undecodable": 1})
    return str(path)


def test_facts_sum_the_manifest(run):
    facts = collect.load_run(run)
    assert (facts.totals["rows_in"], facts.totals["rows_out"], facts.totals["rows_quarantined"]) == (31, 25, 6)
    assert facts.totals["quarantine_reasons"] == {"empty_title": 5, "image_undecodable": 1}


def test_products_per_second_is_rows_in_over_start_to_last_commit(run):
    facts = collect.load_run(run)
    assert facts.elapsed_seconds == 3 * SECONDS_PER_SHARD
    assert facts.products_per_second == pytest.approx(31 / (3 * SECONDS_PER_SHARD))


def test_a_folder_without_commits_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no committed shards"):
        collect.load_run(str(tmp_path))


def test_sample_is_the_products_with_the_smallest_hash(run):
    rows = collect.sample_products(collect.load_run(run), 7)
    every_id = [f"P{i:04d}" for i in range(25)]
    expected = sorted(every_id, key=collect.sample_key)[:7]
    assert sorted(r["product_id"] for r in rows) == sorted(expected)


def test_sample_does_not_depend_on_how_the_run_was_sharded(tmp_path):
    build_run(tmp_path / "a", products=25, shard_size=4)
    build_run(tmp_path / "b", products=25, shard_size=25)
    ids = [[r["product_id"] for r in collect.sample_products(collect.load_run(str(tmp_path / x)), 6)] for x in "ab"]
    assert ids[0] == ids[1]


def test_sample_rows_are_full_rows_in_catalogue_order(run):
    rows = collect.sample_products(collect.load_run(run), 25)
    assert [r["product_id"] for r in rows] == [f"P{i:04d}" for i in range(25)]
    assert all(r["image"] and len(r["variants"]) == 5 for r in rows)


def test_quarantine_examples_are_capped_per_reason_and_carry_no_images(run):
    examples = collect.quarantine_examples(collect.load_run(run), per_reason=2)
    assert sorted(e["reason"] for e in examples) == ["empty_title", "empty_title", "image_undecodable"]
    assert all("image" not in e and "raw" not in e for e in examples)


def test_a_quarantined_row_without_a_title_shows_its_raw_input_shortened(run):
    examples = collect.quarantine_examples(collect.load_run(run), per_reason=5)
    untitled = [e for e in examples if not e["title"]]
    assert untitled and all(len(e["raw_preview"]) == collect.RAW_PREVIEW_CHARS + 1 for e in untitled)


def test_quarantine_examples_read_only_the_files_that_hold_them(tmp_path, monkeypatch):
    """A reason with one row must not make the report read every quarantine file of a big run looking for more."""
    path = tmp_path / "run"
    build_run(path, products=40, shard_size=2, quarantine={"empty_title": 40, "image_undecodable": 1})
    facts = collect.load_run(str(path))
    assert sum(1 for r in facts.records if r.quarantine_file) == 20
    read = []
    table = collect._quarantine_table
    monkeypatch.setattr(collect, "_quarantine_table", lambda uri: read.append(uri) or table(uri))
    examples = collect.quarantine_examples(facts, per_reason=3)
    assert sorted(e["reason"] for e in examples) == ["empty_title"] * 3 + ["image_undecodable"]
    holding = [r for r in facts.records if "image_undecodable" in r.quarantine_reasons]
    assert len(read) == 2 and str(path / holding[0].quarantine_file) in read  # two shards hold the first three

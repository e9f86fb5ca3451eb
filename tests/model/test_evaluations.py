"""The run folder's record of evaluations says which products were ranked, and the run report says it too."""
from __future__ import annotations

import html
import json

import pytest

from augment.ops.report import build
from model.evaluations import record_evaluation, write_training_record
from tests.augment.ops.report.synthetic_run import build_run

RESULTS = {"ours/epoch-0001": {"t->mm": {"R@1": 0.91234, "R@10": 1.0}}}


@pytest.mark.parametrize("split, count, says", [
    ("train", 37, "the 37 training products: the model learned from them, so this is no measure of how it does on "
                  "products it has never seen"),
    ("held-out", 11, "the 11 held-out products"),
    ("all", 48, "all 48 products of the run"),
])
def test_the_report_says_which_products_an_evaluation_ranked(tmp_path, split, count, says):
    run = tmp_path / "run"
    build_run(run, products=6, shard_size=3)
    build.write_report(str(run))
    write_training_record(tmp_path / "ours", str(run), "tiny")
    line = record_evaluation(str(run), tmp_path / "eval.json", [str(tmp_path / "ours" / "epoch-0001")], RESULTS,
                             split=split, products=count)
    assert (line["split"], line["products"]) == (split, count)
    assert json.loads((run / "_evaluations.jsonl").read_text())["split"] == split
    index = html.unescape((run / "report" / "index.html").read_text())
    assert f"R@1 / R@10 in percent on {says}" in index
    assert "91.2 / 100.0" in index


def test_a_record_written_before_splits_were_recorded_reads_as_held_out(tmp_path):
    run = tmp_path / "run"
    build_run(run, products=6, shard_size=3)
    (run / "_evaluations.jsonl").write_text(json.dumps({
        "evaluated_at": 1.7e9, "results": str(tmp_path / "eval.json"), "gallery": None,
        "checkpoints": ["ours/epoch-0001"], "headline": RESULTS}) + "\n")
    build.write_report(str(run))
    index = html.unescape((run / "report" / "index.html").read_text())
    assert "R@1 / R@10 in percent on the held-out products" in index


def test_a_torn_or_foreign_evaluation_line_is_left_out_and_an_odd_start_time_shown_as_it_is(tmp_path, caplog):
    """A line cut short by a crash mid-append failed the whole report ("Expecting ',' delimiter", no file named);
    a created_at in milliseconds failed it with "year 58904 is out of range"."""
    run = tmp_path / "run"
    build_run(run, products=6, shard_size=3)
    good = {"evaluated_at": 1.7e9, "results": str(tmp_path / "eval.json"), "gallery": None,
            "checkpoints": ["ours/epoch-0001"], "headline": RESULTS}
    (run / "_evaluations.jsonl").write_text(json.dumps(good) + "\n" + '{"x": 1}\n' + json.dumps(good)[:40] + "\n")
    record = json.loads((run / "_run.json").read_text())
    (run / "_run.json").write_text(json.dumps(record | {"created_at": 1.7e12}))
    build.write_report(str(run))
    index = html.unescape((run / "report" / "index.html").read_text())
    assert "91.2 / 100.0" in index and "1700000000000.0 (not a time in seconds since 1970)" in index
    assert f"{run / '_evaluations.jsonl'} line 2 is not an evaluation record (no evaluated_at time)" in caplog.text
    assert f"{run / '_evaluations.jsonl'} line 3 is not an evaluation record (not JSON)" in caplog.text


def test_an_evaluation_of_checkpoints_trained_elsewhere_says_why_it_is_not_recorded(tmp_path, caplog):
    run, other = tmp_path / "run", tmp_path / "other"
    build_run(run, products=6, shard_size=3)
    write_training_record(tmp_path / "ours", str(other), "tiny")
    with caplog.at_level("INFO", logger="model.evaluations"):
        line = record_evaluation(str(run), tmp_path / "eval.json", [str(tmp_path / "ours" / "epoch-0001")], RESULTS)
    assert line is None and not (run / "_evaluations.jsonl").exists()
    assert f"not recorded in the report of {run.resolve()}: no checkpoint was trained on it (trained on " \
           f"{other.resolve()})" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="model.evaluations"):
        assert record_evaluation(str(run), tmp_path / "eval.json", [], RESULTS) is None  # baselines alone: silent
    assert caplog.text == ""


@pytest.mark.parametrize("content, says", [("", "not a readable training record"), ("[]", "names no run folder"),
                                            (b"\xff", "not a readable training record"),
                                            ('{"data_resolved": 5}', "names no run folder")])
def test_a_damaged_training_record_leaves_the_evaluation_unrecorded_with_a_warning(tmp_path, caplog, content, says):
    """Recording never fails an evaluation: the results are written before it."""
    run = tmp_path / "run"
    build_run(run, products=6, shard_size=3)
    (tmp_path / "ours").mkdir()
    record = tmp_path / "ours" / "training.json"
    record.write_bytes(content if isinstance(content, bytes) else content.encode())
    with caplog.at_level("WARNING", logger="model.evaluations"):
        assert record_evaluation(str(run), tmp_path / "eval.json", [str(tmp_path / "ours" / "epoch-0001")],
                                 RESULTS) is None
    assert f"{record}: {says}" in caplog.text and not (run / "_evaluations.jsonl").exists()

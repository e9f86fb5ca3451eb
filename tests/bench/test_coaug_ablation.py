"""The co-augmentation ablation's plumbing on a tiny synthetic run: folds, settings, results file, resume, table."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.model.shards import product_rows, write_run

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import coaug_ablation  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("run") / "run", product_rows(64))


ARGS = ["--seeds", "0", "--folds", "2", "--epochs", "1", "--set", "train.batch_size=8"]


@pytest.mark.slow
def test_each_setting_trains_per_seed_and_fold_and_the_table_pairs_it_with_raw(run, tmp_path, capsys):
    out = tmp_path / "ablation.json"
    settings = ["raw", "subject", 'mine:data.candidate_views=sample,data.variant_kinds=["angle"]']
    assert coaug_ablation.main(["--data", str(run), "--settings", *settings, "--out", str(out), *ARGS]) == 0
    state = json.loads(out.read_text())
    assert sorted(state["runs"]) == sorted(f"{s}|seed=0|fold={f}" for s in ("raw", "subject", "mine") for f in (0, 1))
    first = state["runs"]["mine|seed=0|fold=0"]
    assert first["config"]["data"]["variant_kinds"] == ["angle"]
    assert first["config"]["data"]["candidate_views"] == "sample"
    assert state["runs"]["subject|seed=0|fold=1"]["config"]["data"]["enriched_titles"] is False
    assert state["runs"]["raw|seed=0|fold=0"]["config"]["data"]["coaug"] is False
    # The two folds hold every product out once.
    assert first["train_products"] + first["held_out_products"] == 64
    assert (state["runs"]["mine|seed=0|fold=1"]["held_out_products"] == first["train_products"])
    for direction in ("t->mm", "i->mm", "mm->mm", "t->i", "i->t"):
        assert 0.0 <= first["results"][direction]["R@10"] <= 1.0
    table = capsys.readouterr().out
    assert "paired difference to raw" in table and "mine" in table.split("paired")[1]

    # A rerun skips what the file holds; a changed setting under the same name is refused.
    before = out.read_text()
    assert coaug_ablation.main(["--data", str(run), "--settings", "raw", "--out", str(out), *ARGS]) == 0
    assert out.read_text() == before
    with pytest.raises(SystemExit, match="another config"):
        coaug_ablation.main(["--data", str(run), "--settings", "raw:data.coaug=true", "--out", str(out), *ARGS])


def test_unknown_setting_is_refused():
    with pytest.raises(SystemExit, match="unknown setting"):
        coaug_ablation.parse_setting("everything")
    name, overrides = coaug_ablation.parse_setting("x+all-sample:data.max_variants=3")
    assert name == "x" and overrides["data.candidate_views"] == "sample"
    assert overrides["data.max_variants"] == 3


def test_a_record_made_before_a_config_field_existed_still_matches():
    current = {"data": {"coaug": False, "new_field": 1}, "train": {"seed": 0}}
    assert coaug_ablation.same_config({"data": {"coaug": False}, "train": {"seed": 0}}, current)
    assert not coaug_ablation.same_config({"data": {"coaug": True}, "train": {"seed": 0}}, current)

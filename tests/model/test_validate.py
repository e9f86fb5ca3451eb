"""Validation while training: the score that picks best/, its config keys, and the validator on real shards."""
import pytest
import torch

from model.checkpoint import build_model
from model.config import ConfigError, load_config
from model.validate import Validator, score
from tests.model.shards import product_rows, write_run

RESULTS = {d: {"R@1": r, "R@5": r + 0.1, "R@10": r + 0.2, "nDCG@10": r / 2}
           for d, r in {"t->mm": 0.5, "i->mm": 0.3, "mm->mm": 0.7, "t->i": 0.1, "i->t": 0.2}.items()}


def test_score_averages_the_directions_or_reads_one():
    assert score(RESULTS, "R@10") == pytest.approx((0.7 + 0.5 + 0.9 + 0.3 + 0.4) / 5)
    assert score(RESULTS, "t->mm/R@1") == 0.5
    assert score(RESULTS, "mm->mm/nDCG@10") == 0.35


@pytest.mark.parametrize("key, value", [("train.best_metric", "R@3"), ("train.best_metric", "x->mm/R@10"),
                                        ("train.keep_last", -1), ("train.val_products", 1)])
def test_bad_checkpoint_settings_are_config_errors(key, value):
    with pytest.raises(ConfigError, match=key):
        load_config("tiny", {key: value})


def test_checkpoint_settings_have_defaults_and_accept_one_direction():
    cfg = load_config("tiny", {"train.best_metric": "i->mm/nDCG@10"})
    assert (cfg.train.keep_last, cfg.train.val_products) == (2, 1000)
    assert load_config("tiny").train.best_metric == "R@10"
    assert load_config("tiny", {"train.best_metric": ""}).train.best_metric == ""


def test_validator_scores_the_held_out_products_without_touching_the_torch_rng(tmp_path):
    run = write_run(tmp_path / "run", product_rows(100))
    cfg = load_config("tiny", {"train.val_products": 12})
    validator = Validator(str(run), cfg)
    assert len(validator.records) == 12 and validator.cfg.data.eval_queries == "attributes"
    model, _ = build_model(cfg)
    torch.manual_seed(3)
    metrics = validator(model)
    after = torch.rand(1)
    torch.manual_seed(3)
    assert torch.equal(after, torch.rand(1))  # validation drew nothing from the training RNG
    assert set(metrics) >= {"val/t->mm/R@10", "val/i->t/nDCG@10", "val_score", "val_seconds"}
    assert metrics["val_score"] == pytest.approx(sum(metrics[f"val/{d}/R@10"] for d in RESULTS) / 5)


def test_validator_falls_back_to_title_queries_without_labels(tmp_path):
    run = write_run(tmp_path / "run", product_rows(60, labels=False))
    validator = Validator(str(run), load_config("tiny"))
    assert validator.cfg.data.eval_queries == "title"

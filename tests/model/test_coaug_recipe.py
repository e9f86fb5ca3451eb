"""The co-augmentation recipe's data options: which variant kinds and titles a candidate uses, variants as image
queries, cross-validation folds, and the candidate view cache."""
import random

import pytest
import torch

from model import images as image_ops
from model.config import ConfigError, load_config
from model.data import candidate_inputs, collate, fold_of, is_held_out, product_records
from model.tokenizer import build_tokenizer
from tests.model.shards import product_image, product_rows


# The tiny config leaves co-augmented views out of training; these tests switch them on.
COAUG = {"data.variant_kinds": ["subject", "background", "angle", "logo", "detail"], "data.enriched_titles": True}


def records(count=4):
    rows = product_rows(count)
    for row in rows:  # both ok variants differ from the raw image, and from each other
        row["variants"][0]["image"] = product_image(0, (0, 0, 0), angle=45)
        row["variants"][1]["image"] = product_image(2, (250, 250, 0))
    return product_records({key: [row[key] for row in rows] for key in rows[0]})


def test_variant_kinds_select_the_variants_a_candidate_may_use():
    (record,) = records(1)
    assert record["variant_kinds"] == ["subject", "angle"]
    data = load_config("tiny", {**COAUG, "data.variant_kinds": ["angle"], "data.max_variants": 4}).data
    _, images = candidate_inputs(record, data, random.Random(0))
    assert images == [record["image"], record["variant_images"][1]]
    data = load_config("tiny", {**COAUG, "data.variant_kinds": [], "data.candidate_views": "sample",
                                "data.original_view_prob": 0.0}).data
    titles, images = candidate_inputs(record, data, random.Random(0))
    assert images == [record["image"]] and titles == [record["enriched_title"]]  # the enriched title alone


def test_enriched_titles_can_be_left_out():
    (record,) = records(1)
    data = load_config("tiny", {**COAUG, "data.enriched_titles": False}).data
    titles, images = candidate_inputs(record, data, random.Random(0))
    assert titles == [record["title"]] and len(images) == 3


def test_unknown_variant_kind_and_bad_probabilities_are_config_errors():
    with pytest.raises(ConfigError, match="data.variant_kinds"):
        load_config("tiny", {"data.variant_kinds": ["sketch"]})
    with pytest.raises(ConfigError, match="data.query_variant_prob"):
        load_config("tiny", {"data.query_variant_prob": 1.5})


def test_image_queries_can_be_drawn_from_variants():
    recs = records(4)
    partner = [1, 0, 3, 2]
    raw_cfg = load_config("tiny", {"data.query_variant_prob": 0.0})
    var_cfg = load_config("tiny", {"data.query_variant_prob": 1.0, "data.variant_kinds": ["subject"]})
    tokenizer = build_tokenizer(raw_cfg.text)
    raw = collate(recs, partner, raw_cfg, tokenizer, random.Random(0)).images["query"]
    from_variant = collate(recs, partner, var_cfg, tokenizer, random.Random(0)).images["query"]
    assert raw.shape == from_variant.shape
    # The subject variant is a black diamond: the re-framed query is far darker than the raw coloured square.
    assert from_variant.mean() < raw.mean() - 0.3
    no_coaug = load_config("tiny", {"data.coaug": False})
    plain = collate(recs, partner, no_coaug, tokenizer, random.Random(0)).images["query"]
    with_prob = load_config("tiny", {"data.coaug": False, "data.query_variant_prob": 1.0})
    assert torch.equal(collate(recs, partner, with_prob, tokenizer, random.Random(0)).images["query"], plain)


def test_folds_partition_the_products_and_are_fixed_by_product_id():
    ids = [f"p{i}" for i in range(3000)]
    folds = [fold_of(pid, 3) for pid in ids]
    assert folds == [fold_of(pid, 3) for pid in ids]
    assert all(0.3 < folds.count(k) / len(ids) < 0.37 for k in range(3))
    # The same hash as the evaluation split: fold 0 of 5 is the 20 % held out by is_held_out.
    assert [pid for pid in ids if fold_of(pid, 5) == 0] == [pid for pid in ids if is_held_out(pid, 0.2)]


def test_view_cache_returns_the_candidate_view_and_stays_in_its_budget():
    data = [product_image(i % 4, (10 * i, 0, 0), size=80) for i in range(6)]
    cache = image_ops.ViewCache(budget=3 * 16 * 16 * 3)
    for item in data + data:
        view = cache(item, 16)
        expected = image_ops.candidate_view(image_ops.decode(item), 16)
        assert (view.mode, view.size, view.tobytes()) == (expected.mode, expected.size, expected.tobytes())
    assert len(cache.items) == 3 and cache.used == 3 * 16 * 16 * 3


def test_variants_can_go_to_the_image_only_candidate_alone():
    recs = records(4)
    partner = [1, 0, 3, 2]
    cfg = load_config("tiny", {**COAUG, "data.candidate_views": "sample", "data.original_view_prob": 0.0,
                               "data.variant_target": "image"})
    tokenizer = build_tokenizer(cfg.text)
    batch = collate(recs, partner, cfg, tokenizer, random.Random(0))
    raw = collate(recs, partner, load_config("tiny", {"data.coaug": False}), tokenizer, random.Random(0))
    assert torch.equal(batch.images["candidate"], raw.images["candidate"])  # c_mm keeps the raw image
    assert batch.views["c_i"] == ("candidate_image", None) and batch.views["c_mm"] == ("candidate", "candidate")
    assert not torch.equal(batch.images["candidate_image"], raw.images["candidate"])  # c_i shows variants
    from model.checkpoint import build_model

    model, _ = build_model(cfg, seed=0)
    views, _ = model(batch.images, batch.texts, batch.views, batch.image_masks)
    assert views["c_i"].embedding.shape == views["c_mm"].embedding.shape == (4, cfg.text.width)
    with pytest.raises(ConfigError, match="data.variant_target"):
        load_config("tiny", {"data.variant_target": "query"})


def test_the_tiny_recipe_trains_on_raw_titles_and_images_only():
    """Measured on Myntra (docs/model.md): every co-augmented view the CPU backends make lowered some
    direction, so `tiny` leaves them out; the views stay in the shards for recipes that enable them."""
    (record,) = records(1)
    data = load_config("tiny").data
    assert data.coaug and data.variant_kinds == () and data.enriched_titles is False
    assert candidate_inputs(record, data, random.Random(0)) == ([record["title"]], [record["image"]])

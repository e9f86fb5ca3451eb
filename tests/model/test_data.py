"""Shard rows -> product records -> training batches."""
import random
from collections import Counter

import torch

from model.config import load_config
from model.data import collate, is_held_out, pair_batches, product_records, query_text, training_query
from model.tokenizer import build_tokenizer
from tests.model.shards import product_image, product_rows


def columns(rows):
    return {key: [row[key] for row in rows] for key in rows[0]}


def test_records_keep_enriched_title_and_only_ok_variants():
    (record,) = product_records(columns(product_rows(1)))
    row = product_rows(1)[0]
    assert record["title"] == row["title"]
    assert record["enriched_title"] == row["enriched_title"]
    assert record["variant_kinds"] == ["subject", "angle"]  # filtered and failed variants are left out
    assert record["variant_images"] == [row["variants"][0]["image"], row["variants"][1]["image"]]
    assert record["query_terms"] == [row["catalog_brand"], "Red", "Shirts"]
    assert record["category"] == "apparel > topwear > shirts"


def test_rejected_enrichment_is_not_a_text_view():
    rows = product_rows(1)
    rows[0]["enrichment"]["status"] = "rejected:lost_entity"
    (record,) = product_records(columns(rows))
    assert record["enriched_title"] is None


def test_image_uri_is_read_when_bytes_are_absent(tmp_path):
    rows = product_rows(1)
    path = tmp_path / "p.jpg"
    path.write_bytes(rows[0]["image"])
    rows[0]["image"], rows[0]["image_uri"] = None, str(path)
    (record,) = product_records(columns(rows))
    assert record["image"] == path.read_bytes()


def test_row_without_readable_image_is_skipped_and_logged(tmp_path, caplog):
    rows = product_rows(2)
    rows[0]["image"], rows[0]["image_uri"] = None, str(tmp_path / "missing.jpg")
    records = product_records(columns(rows))
    assert [r["product_id"] for r in records] == ["p0001"]
    assert "p0000" in caplog.text


def test_rows_without_a_title_are_skipped_and_counted_by_reason():
    from model.data import Skipped

    rows = product_rows(4)
    rows[0]["title"], rows[2]["title"] = None, " \t"
    skipped = Skipped()
    records = product_records(columns(rows), skipped=skipped)
    assert [r["product_id"] for r in records] == ["p0001", "p0003"]
    assert skipped.describe() == "2 products skipped: 2 without a title (title null or blank) (e.g. p0000, p0002)"


def test_held_out_split_is_fixed_by_product_id():
    ids = [f"p{i}" for i in range(2000)]
    held = [pid for pid in ids if is_held_out(pid, 0.2)]
    assert held == [pid for pid in ids if is_held_out(pid, 0.2)]
    assert 0.17 < len(held) / len(ids) < 0.23
    assert set(held) <= {pid for pid in ids if is_held_out(pid, 0.5)}  # a larger split contains the smaller


def test_pairs_share_a_category_when_possible():
    records = product_records(columns(product_rows(24)))  # 4 categories x 6 products
    batches = list(pair_batches(records, 8, random.Random(0)))
    seen = Counter()
    for batch, partner in batches:
        for i, j in enumerate(partner):
            assert partner[j] == i and i != j
            assert batch[i]["category"] == batch[j]["category"]
            seen[batch[i]["product_id"]] += 1
    assert len(seen) == 24 and set(seen.values()) == {1}


def test_odd_products_pair_within_their_top_level_category():
    records = product_records(columns(product_rows(8)))  # 0, 4 shirts; 1, 5 sneakers; 3, 7 jeans
    shirt, jeans, sneakers = records[0], records[3], [records[1], records[5]]
    ((batch, partner),) = pair_batches([shirt, jeans] + sneakers, 4, random.Random(0))
    pairs = {frozenset((batch[i]["product_id"], batch[j]["product_id"])) for i, j in enumerate(partner)}
    assert pairs == {frozenset(("p0000", "p0003")), frozenset(("p0001", "p0005"))}


def test_query_text_entities_and_keywords():
    title, terms = "Acme Style007 Red Shirts", ["Acme", "Red", "Shirts"]
    assert query_text(title, terms, "entities", 0.5, random.Random(0)) == "Acme Red Shirts"
    keywords = query_text(title, terms, "keywords", 0.5, random.Random(0)).split()
    assert len(keywords) == 2 and all(w in title.lower().split() for w in keywords)
    assert query_text(title, ["Red"], "entities", 0.5, random.Random(0)).count(" ") == 1  # fallback: keywords


def tokens_of(tokenizer, texts):
    ids, mask = tokenizer(texts)
    return [row[m].tolist() for row, m in zip(ids, mask)]


def test_without_coaugmentation_candidates_are_raw_titles_and_images():
    cfg = load_config("tiny", {"data.coaug": False, "data.original_view_prob": 0.0})
    records = product_records(columns(product_rows(4)))
    tokenizer = build_tokenizer(cfg.text)
    batch = collate(records, [1, 0, 3, 2], cfg, tokenizer, random.Random(0))
    ids, mask = batch.texts["candidate"]
    assert [row[m].tolist() for row, m in zip(ids, mask)] == tokens_of(tokenizer, [r["title"] for r in records])
    raw = collate(records, [1, 0, 3, 2], cfg, tokenizer, random.Random(1)).images["candidate"]
    assert torch.equal(batch.images["candidate"], raw)


# The tiny config leaves co-augmented views out of training; these tests switch them on.
COAUG = {"data.variant_kinds": ["subject", "background", "angle", "logo", "detail"], "data.enriched_titles": True}


def coaug_records(count):
    rows = product_rows(count)
    for row in rows:  # variants that differ from the raw image: a rotated product
        row["variants"][0]["image"] = row["variants"][1]["image"] = product_image(0, (0, 0, 0), angle=45)
    return product_records(columns(rows))


def test_sampled_views_replace_title_and_image_by_enriched_title_and_variant():
    cfg = load_config("tiny", {**COAUG, "data.candidate_views": "sample", "data.original_view_prob": 0.0})
    records = coaug_records(4)
    tokenizer = build_tokenizer(cfg.text)
    batch = collate(records, [1, 0, 3, 2], cfg, tokenizer, random.Random(0))
    ids, mask = batch.texts["candidate"]
    assert [row[m].tolist() for row, m in zip(ids, mask)] == tokens_of(tokenizer, [r["enriched_title"] for r in records])
    raw = collate(records, [1, 0, 3, 2], load_config("tiny", {"data.coaug": False}), tokenizer, random.Random(0))
    assert batch.images["candidate"].shape == raw.images["candidate"].shape == (4, 3, 64, 64)
    assert not torch.equal(batch.images["candidate"], raw.images["candidate"])


def test_concatenated_views_join_both_titles_and_the_raw_image_with_variants():
    cfg = load_config("tiny", {**COAUG, "data.candidate_views": "concat", "data.max_variants": 2})
    records = coaug_records(4)
    records[3]["variant_images"] = records[3]["variant_images"][:1]  # a product with one usable variant
    tokenizer = build_tokenizer(cfg.text)
    batch = collate(records, [1, 0, 3, 2], cfg, tokenizer, random.Random(0))
    ids, mask = batch.texts["candidate"]
    joined = [r["title"] + " " + r["enriched_title"] for r in records]
    assert [row[m].tolist() for row, m in zip(ids, mask)] == tokens_of(tokenizer, joined)
    assert batch.images["candidate"].shape == (4, 3, 3, 64, 64)  # raw + up to two variants
    assert batch.image_masks["candidate"].tolist() == [[True, True, True]] * 3 + [[True, True, False]]
    raw = collate(records, [1, 0, 3, 2], load_config("tiny", {"data.coaug": False}), tokenizer, random.Random(0))
    assert torch.equal(batch.images["candidate"][:, 0], raw.images["candidate"])  # the raw image comes first


def test_joint_mode_gives_every_triplet_three_queries():
    cfg = load_config("tiny")
    batch = collate(product_records(columns(product_rows(4))), [1, 0, 3, 2], cfg, build_tokenizer(cfg.text),
                    random.Random(0))
    assert {k: v.tolist() for k, v in batch.query_index.items()} == {
        "t->mm": [0, 1, 2, 3], "i->mm": [0, 1, 2, 3], "mm->mm": [0, 1, 2, 3]}
    assert batch.views["mm->mm"] == ("query", "query")
    assert batch.images["query"].shape == (4, 3, 64, 64)


def test_ratio_mode_draws_one_query_modality_per_triplet():
    cfg = load_config("tiny", {"data.query_mode": "ratio", "data.query_ratio": [12, 3, 2]})
    records = product_records(columns(product_rows(200)))
    partner = [i ^ 1 for i in range(200)]
    batch = collate(records, partner, cfg, build_tokenizer(cfg.text), random.Random(0))
    counts = {k: len(v) for k, v in batch.query_index.items()}
    assert sum(counts.values()) == 200
    assert counts["i->mm"] > counts["t->mm"] > 0 and counts["i->mm"] > counts["mm->mm"] > 0
    assert batch.images["query_i"].shape[0] == counts["i->mm"]
    assert batch.texts["query_t"][0].shape[0] == counts["t->mm"]


def test_ratio_mode_with_image_only_ratio_has_only_image_queries():
    cfg = load_config("tiny", {"data.query_mode": "ratio", "data.query_ratio": [1, 0, 0]})
    batch = collate(product_records(columns(product_rows(6))), [1, 0, 3, 2, 5, 4], cfg,
                    build_tokenizer(cfg.text), random.Random(0))
    assert list(batch.query_index) == ["i->mm"]
    assert set(batch.views) == {"c_mm", "c_i", "c_t", "i->mm"}


ATTRIBUTES = ("gender", "base_colour", "article_type")


def test_records_carry_normalised_labels():
    (record,) = product_records(columns(product_rows(1)), attributes=ATTRIBUTES + ("usage", "category_leaf"))
    assert record["labels"] == ["men", "red", "shirts", None, "shirts"]


def test_training_query_follows_train_queries():
    (record,) = product_records(columns(product_rows(1)), attributes=ATTRIBUTES)
    own = f"{product_rows(1)[0]['catalog_brand']} Red Shirts"  # the title's entities
    title = load_config("tiny", {"data.train_queries": "title"}).data
    labels = load_config("tiny", {"data.train_queries": "attributes"}).data
    assert training_query(record, title, random.Random(0)) == (own, None)
    assert training_query(record, labels, random.Random(0)) == ("men red shirts", ("men", "red", "shirts"))
    record["labels"] = [None, None, None]  # a product without labels falls back to its title query
    assert training_query(record, labels, random.Random(0)) == (own, None)


def test_both_draws_title_and_attribute_queries():
    (record,) = product_records(columns(product_rows(1)), attributes=ATTRIBUTES)
    data = load_config("tiny", {"data.train_queries": "both"}).data
    rng = random.Random(0)
    own = f"{product_rows(1)[0]['catalog_brand']} Red Shirts"
    assert {training_query(record, data, rng)[0] for _ in range(20)} == {own, "men red shirts"}


def test_batch_marks_other_products_with_the_labels_of_an_attribute_query():
    cfg = load_config("tiny", {"data.train_queries": "attributes"})
    rows = product_rows(52)
    records = product_records(columns([rows[0], rows[4], rows[48], rows[1]]), attributes=ATTRIBUTES)
    # p0000 and p0048 are men / red / shirts; p0004 is a men / blue shirt; p0001 men / red / sneakers
    batch = collate(records, [1, 0, 3, 2], cfg, build_tokenizer(cfg.text), random.Random(0))
    assert batch.query_relevant.tolist() == [
        [False, False, True, False],
        [False, False, False, False],
        [True, False, False, False],
        [False, False, False, False],
    ]


def test_title_queries_mark_no_other_product():
    cfg = load_config("tiny", {"data.train_queries": "title"})
    rows = product_rows(52)
    records = product_records(columns([rows[0], rows[48]]), attributes=ATTRIBUTES)
    assert collate(records, [1, 0], cfg, build_tokenizer(cfg.text), random.Random(0)).query_relevant is None

"""The evaluation protocols (title and attribute queries, their relevant sets), and the TF-IDF baseline."""
import math

import pytest
import torch

from model.config import load_config
from model.data import product_records
from model.evaluate import (
    ProtocolError, bag_of_words_scores, chunked_metrics, evaluate_bag_of_words, evaluation_inputs, recall_at_k,
    split_records, text_queries,
)
from tests.model.shards import product_rows

ATTRIBUTES = ("gender", "base_colour", "article_type")


def labelled(rows: list[tuple]) -> list[dict]:
    """Product records with a title and the labels (gender, base_colour, article_type) of each tuple."""
    products = product_rows(len(rows), labels=False)
    columns = {k: [p[k] for p in products] for k in products[0]}
    for name, values in zip(ATTRIBUTES, zip(*rows)):
        columns[name] = list(values)
    columns["title"] = ["Palm Tree Girls Sp Jace Sko White Skirts"] * len(rows)
    return product_records(columns, attributes=ATTRIBUTES)


FIXTURE = [
    ("Women", "White", "Skirts"),  # p0000
    ("Women", "white", "Skirts"),  # p0001: same labels, other case
    ("Men", "White", "Skirts"),  # p0002
    ("Men", "Navy Blue", "Track Pants"),  # p0003
    ("NA", "Navy Blue", "Track Pants"),  # p0004: gender missing
    (None, "", None),  # p0005: no labels at all
]


def test_recall_counts_ties_as_a_random_order():
    scores = torch.tensor([[0.9, 0.5, 0.1], [0.2, 0.2, 0.3], [0.1, 0.4, 0.4]])
    recall = recall_at_k(scores, torch.tensor([0, 0, 2]), ks=(1, 2))
    # q0 ranks first; q1 has one higher and one tie (R@1 0, R@2 1/2); q2 ties for first (R@1 1/2, R@2 1)
    assert recall["R@1"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert recall["R@2"] == pytest.approx((1 + 0.5 + 1) / 3)


def test_chunked_metrics_equal_recall_of_the_whole_matrix():
    torch.manual_seed(0)
    queries, candidates = torch.randn(50, 8), torch.randn(50, 8)
    whole = recall_at_k(queries @ candidates.T, torch.arange(50))
    chunked = chunked_metrics(queries, candidates, chunk=7)
    assert {k: chunked[k] for k in whole} == pytest.approx(whole)
    assert chunked["queries"] == 50


def test_attribute_queries_one_per_label_combination_with_every_matching_product():
    cfg = load_config("tiny")
    queries = text_queries(labelled(FIXTURE), cfg.data)
    relevant = {text: [f"p{j:04d}" for j in row.nonzero().flatten().tolist()]
                for text, row in zip(queries.texts, queries.relevant)}
    assert relevant == {
        "men navy blue track pants": ["p0003"],
        "men white skirts": ["p0002"],
        "women white skirts": ["p0000", "p0001"],
        "navy blue track pants": ["p0003", "p0004"],  # a query without gender: any gender is relevant
    }
    assert queries.texts == ["men navy blue track pants", "men white skirts", "women white skirts",
                             "navy blue track pants"]  # sorted by labels, missing ones last


def test_attribute_queries_never_read_the_title():
    cfg = load_config("tiny")
    queries = text_queries(labelled([("Women", "White", "Skirts")]), cfg.data)
    assert queries.texts == ["women white skirts"]  # the title says "Girls", "Palm Tree"... none of it is used


def test_title_protocol_relevance_is_the_product_itself():
    cfg = load_config("tiny", {"data.eval_queries": "title"})
    queries = text_queries(labelled(FIXTURE), cfg.data)
    assert len(queries.texts) == len(FIXTURE)
    assert torch.equal(queries.relevant, torch.eye(len(FIXTURE), dtype=torch.bool))


def test_attribute_protocol_without_labels_is_an_error():
    rows = product_rows(3, labels=False)
    records = product_records({k: [r[k] for r in rows] for k in rows[0]}, attributes=ATTRIBUTES)
    with pytest.raises(ProtocolError, match="--queries title"):
        text_queries(records, load_config("tiny").data)


def test_multimodal_queries_pair_each_photo_with_its_own_labels():
    inputs = evaluation_inputs(labelled(FIXTURE), load_config("tiny"))
    assert inputs["query_text"] == ["women white skirts", "women white skirts", "men white skirts",
                                    "men navy blue track pants", "navy blue track pants", ""]
    assert len(inputs["query_image"]) == len(FIXTURE)


def test_tf_idf_baseline_scores_attribute_queries_against_label_relevance():
    records = labelled(FIXTURE)
    titles = ["Acme Women White Skirts", "Acme White Skirts", "Borealis Men White Skirts",
              "Corvid Men Navy Blue Track Pants", "Delta Navy Blue Track Pants", "Evergreen Socks"]
    for record, title in zip(records, titles):
        record["title"] = title
    result = evaluate_bag_of_words(load_config("tiny"), records)["t->mm"]
    # "men white skirts": p0002's title holds every word (top 1); "women white skirts": p0000 likewise;
    # "men navy blue track pants": p0003; "navy blue track pants": p0004 (shortest matching title), relevant.
    assert result["R@1"] == pytest.approx(1.0)
    assert result["queries"] == 4


def test_bag_of_words_is_tf_idf_cosine():
    scores = bag_of_words_scores(["Red shirt"], ["red shirt", "blue shirt"])
    idf_colour = math.log(3 / 2) + 1  # red and blue occur in one of two documents; shirt in both: idf 1
    assert scores[0, 0].item() == pytest.approx(1.0)
    assert scores[0, 1].item() == pytest.approx(1 / (idf_colour**2 + 1))


def test_words_unknown_to_the_documents_score_nothing():
    assert bag_of_words_scores(["green"], ["red shirt"]).tolist() == [[0.0]]


def test_evaluation_queries_are_fixed_by_product_id():
    cfg = load_config("tiny", {"data.query_text": "keywords", "data.eval_queries": "title"})
    records = product_records({k: [r[k] for r in product_rows(3)] for k in product_rows(1)[0]})
    first, again = evaluation_inputs(records, cfg), evaluation_inputs(list(reversed(records)), cfg)
    assert first["query_text"] == list(reversed(again["query_text"]))
    assert first["query_image"][0].tobytes() == again["query_image"][2].tobytes()
    assert first["candidate_text"] == [r["title"] for r in records]


def test_the_first_products_of_a_split_are_read_from_the_shards_that_hold_them(tmp_path, monkeypatch):
    """A validation set of `limit` products reads every shard's ids, then only the shards holding the first ones
    with a usable image: the same records as reading the whole run."""
    from model import evaluate
    from tests.model.shards import write_run

    rows = product_rows(60)
    for row in [r for r in rows if evaluate.is_held_out(r["product_id"], 0.5)][:2]:
        row["image"] = b"not an image"  # skipped: the walk goes on to the next ids
    run = str(write_run(tmp_path / "run", rows, shard_size=5))
    whole = evaluate.split_records(run, 0.5, True, quiet=True)
    read = []
    file_records = evaluate._file_records
    monkeypatch.setattr(evaluate, "_file_records", lambda file, *a: read.append(file) or file_records(file, *a))
    first = evaluate.split_records(run, 0.5, True, limit=4, quiet=True)
    assert [r["product_id"] for r in first] == [r["product_id"] for r in whole[:4]]
    assert first.skipped.reasons == {"undecodable": 2} == whole.skipped.reasons
    chosen = {r["product_id"] for r in first}
    holding = {f"{run}/data/shard{i:05d}.parquet" for i in range(0, 60, 5)
               if chosen & {r["product_id"] for r in rows[i:i + 5]}}
    assert holding <= set(read) and len(read) <= len(holding) + 2 < 12  # + the shards of the two skipped


def test_a_product_id_two_shards_hold_is_evaluated_once(tmp_path, caplog):
    """Shards of other writers or merged runs: a product evaluated twice is its own copy's false negative."""
    import json

    from augment.core import manifest
    from tests.model.shards import write_run

    rows = product_rows(120)
    for i in range(10):  # the second shard's first ten products, again at the start of the third
        rows[80 + i] = dict(rows[40 + i])
    run = write_run(tmp_path / "run", rows)
    ids = {row["product_id"] for row in rows}
    with caplog.at_level("WARNING"):
        records = split_records(str(run), 0.2, None)
    assert sorted(r["product_id"] for r in records) == sorted(ids)
    assert records.skipped.reasons == {"duplicate": 10}
    assert "10 whose product_id an earlier row has (the first is kept)" in caplog.text
    lines = (run / manifest.MANIFEST).read_text().splitlines()  # one data file named by two records
    twice = {**json.loads(lines[0]), "shard_id": "again", "row_start": 500}
    (run / manifest.MANIFEST).write_text("\n".join(lines + [json.dumps(twice)]) + "\n")
    assert manifest.committed_data_files(str(run)) == manifest.data_files(str(run))
    assert len(manifest.committed_data_files(str(run))) == 3

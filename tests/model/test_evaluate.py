"""Recall with ties, the bag-of-words baseline, and the evaluation queries."""
import math

import pytest
import torch

from model.config import load_config
from model.data import product_records
from model.evaluate import bag_of_words_scores, chunked_recall, evaluation_inputs, recall_at_k
from tests.model.shards import product_rows


def test_recall_counts_ties_as_a_random_order():
    scores = torch.tensor([[0.9, 0.5, 0.1], [0.2, 0.2, 0.3], [0.1, 0.4, 0.4]])
    recall = recall_at_k(scores, torch.tensor([0, 0, 2]), ks=(1, 2))
    # q0 ranks first; q1 has one higher and one tie (R@1 0, R@2 1/2); q2 ties for first (R@1 1/2, R@2 1)
    assert recall["R@1"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert recall["R@2"] == pytest.approx((1 + 0.5 + 1) / 3)


def test_chunked_recall_equals_recall_of_the_whole_matrix():
    torch.manual_seed(0)
    queries, candidates = torch.randn(50, 8), torch.randn(50, 8)
    whole = recall_at_k(queries @ candidates.T, torch.arange(50))
    assert chunked_recall(queries, candidates, chunk=7) == pytest.approx(whole)


def test_bag_of_words_is_tf_idf_cosine():
    scores = bag_of_words_scores(["Red shirt"], ["red shirt", "blue shirt"])
    idf_colour = math.log(3 / 2) + 1  # red and blue occur in one of two documents; shirt in both: idf 1
    assert scores[0, 0].item() == pytest.approx(1.0)
    assert scores[0, 1].item() == pytest.approx(1 / (idf_colour**2 + 1))


def test_words_unknown_to_the_documents_score_nothing():
    assert bag_of_words_scores(["green"], ["red shirt"]).tolist() == [[0.0]]


def test_evaluation_queries_are_fixed_by_product_id():
    cfg = load_config("tiny", {"data.query_text": "keywords"})
    records = product_records({k: [r[k] for r in product_rows(3)] for k in product_rows(1)[0]})
    first, again = evaluation_inputs(records, cfg), evaluation_inputs(list(reversed(records)), cfg)
    assert first["query_text"] == list(reversed(again["query_text"]))
    assert first["query_image"][0].tobytes() == again["query_image"][2].tobytes()
    assert first["candidate_text"] == [r["title"] for r in records]

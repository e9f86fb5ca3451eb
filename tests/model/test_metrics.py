"""R@k and nDCG@k with several relevant candidates and ties, against hand-computed values."""
import math

import pytest
import torch

from model.metrics import per_query_metrics, ranking_metrics, recall_at_k

# One query; candidate 0 scores highest and is not relevant; candidates 1-3 tie, 1 and 2 relevant.
SCORES = torch.tensor([[0.9, 0.5, 0.5, 0.5, 0.1]])
RELEVANT = torch.tensor([[False, True, True, False, False]])


def test_recall_is_the_chance_of_a_relevant_candidate_in_the_top_k():
    metrics = per_query_metrics(SCORES, RELEVANT, ks=(1, 2, 3), ndcg_k=None)
    assert metrics["R@1"].item() == 0.0  # the only slot goes to candidate 0
    # one slot among the three tied candidates: a relevant one takes it with probability 2/3
    assert metrics["R@2"].item() == pytest.approx(2 / 3)
    assert metrics["R@3"].item() == pytest.approx(1.0)  # two slots among three ties, two relevant: always


def test_ndcg_averages_the_discounts_of_the_tied_ranks():
    metrics = per_query_metrics(SCORES, RELEVANT, ks=(1,), ndcg_k=10)
    expected_gain = (1 / math.log2(3) + 1 / math.log2(4) + 1 / math.log2(5)) / 3  # ranks 2..4, equally likely
    ideal = 1 + 1 / math.log2(3)
    assert metrics["nDCG@10"].item() == pytest.approx(2 * expected_gain / ideal)


def test_ndcg_counts_only_the_top_k():
    scores = torch.tensor([[0.9, 0.8, 0.7]])
    relevant = torch.tensor([[False, False, True]])
    assert per_query_metrics(scores, relevant, ks=(1,), ndcg_k=2)["nDCG@2"].item() == 0.0
    assert per_query_metrics(scores, relevant, ks=(1,), ndcg_k=3)["nDCG@3"].item() == pytest.approx(0.5)


def test_single_relevant_candidate_gives_the_usual_recall():
    scores = torch.tensor([[0.9, 0.5, 0.1], [0.2, 0.2, 0.3], [0.1, 0.4, 0.4]])
    relevant = torch.zeros(3, 3, dtype=torch.bool)
    relevant[[0, 1, 2], [0, 0, 2]] = True
    metrics = ranking_metrics(scores, relevant, ks=(1, 2))
    assert metrics["R@1"] == pytest.approx(recall_at_k(scores, torch.tensor([0, 0, 2]), ks=(1,))["R@1"])
    assert metrics["R@1"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert metrics["nDCG@10"] == pytest.approx((1 + (1 / math.log2(3) + 1 / math.log2(4)) / 2
                                                + (1 + 1 / math.log2(3)) / 2) / 3)


def test_query_without_relevant_candidates_scores_zero():
    metrics = per_query_metrics(torch.tensor([[0.3, 0.2]]), torch.tensor([[False, False]]), ks=(1,))
    assert metrics["R@1"].item() == 0.0 and metrics["nDCG@10"].item() == 0.0


def test_nan_scores_are_misses_not_hits():
    # a diverged model scores everything NaN: nothing is found, where a tie of everything used to put the relevant
    # candidate in every top k (R@1 = 1)
    nan = torch.full((3, 12), float("nan"))
    relevant = torch.eye(3, 12, dtype=torch.bool)
    assert ranking_metrics(nan, relevant) == {"R@1": 0.0, "R@5": 0.0, "R@10": 0.0, "nDCG@10": 0.0}
    # a relevant candidate scored NaN (or inf) is a miss, though the ranking finds nothing better
    for bad in (float("nan"), float("inf"), float("-inf")):
        metrics = per_query_metrics(torch.tensor([[bad, 0.5, 0.2]]), torch.tensor([[True, False, False]]), ks=(1, 3))
        assert metrics["R@1"].item() == metrics["R@3"].item() == metrics["nDCG@10"].item() == 0.0
    # an irrelevant candidate scored NaN ranks below every real score
    metrics = per_query_metrics(torch.tensor([[float("nan"), 0.5, 0.2]]), torch.tensor([[False, False, True]]),
                                ks=(1, 2))
    assert (metrics["R@1"].item(), metrics["R@2"].item()) == (0.0, 1.0)
    assert metrics["nDCG@10"].item() == pytest.approx(1 / math.log2(3))
    # of two relevant candidates, the NaN one still counts in the ideal ranking
    metrics = per_query_metrics(torch.tensor([[0.9, float("nan"), 0.1]]), torch.tensor([[True, True, False]]),
                                ks=(1,))
    assert metrics["R@1"].item() == 1.0 and metrics["nDCG@10"].item() == pytest.approx(1 / (1 + 1 / math.log2(3)))

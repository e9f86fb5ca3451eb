"""Search over candidate chunks: exact top-k and tie-aware metrics equal the whole-matrix ones; an index's
recall is measured against exact search."""
import numpy as np
import pytest
import torch

from model.metrics import per_query_metrics
from model.search import FaissIndex, array_chunks, catalogue_metrics, exact_topk, index_metrics


def unit(rows: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_exact_chunked_topk_equals_brute_force(chunk):
    queries, candidates = unit(37, 16, 0), unit(300, 16, 1)
    scores, index = exact_topk(queries, array_chunks(candidates, chunk)(), k=12, query_block=5)
    brute = torch.from_numpy(queries @ candidates.T).topk(12, dim=1)
    assert torch.equal(index, brute.indices)
    assert torch.allclose(scores, brute.values, atol=1e-6)


def test_topk_of_fewer_candidates_than_k_returns_them_all():
    scores, index = exact_topk(unit(3, 8, 0), array_chunks(unit(5, 8, 1), 2)(), k=10)
    assert index.shape == (3, 5) and sorted(index[0].tolist()) == [0, 1, 2, 3, 4]


def relevance_of(matrix: torch.Tensor):
    return lambda qs, qe, cs, ce: matrix[qs:qe, cs:ce]


def whole_matrix(queries, candidates, relevant, scores=None):
    scores = torch.from_numpy(queries @ candidates.T) if scores is None else scores
    per_query = per_query_metrics(scores.double(), relevant)
    return {k: float(v.mean()) for k, v in per_query.items()}


def test_catalogue_metrics_equal_the_whole_matrix_with_many_relevant_candidates():
    queries, candidates = unit(40, 12, 2), unit(500, 12, 3)
    relevant = torch.from_numpy(np.random.default_rng(4).random((40, 500)) < 0.02)  # 0 to ~20 per query
    relevant[0] = False  # a query without any relevant candidate
    chunked = catalogue_metrics(queries, array_chunks(candidates, 33), relevance_of(relevant), query_block=9)
    assert chunked == pytest.approx(whole_matrix(queries, candidates, relevant), abs=1e-6)


def test_catalogue_metrics_count_ties_as_a_random_order_like_the_whole_matrix():
    base = unit(30, 8, 6)
    queries = base[:20] + 0.01 * unit(20, 8, 5)  # each query closest to its own base vector
    copies = np.concatenate([np.arange(30), np.arange(30), np.arange(10), np.arange(10)])
    candidates = base[copies]  # every candidate has duplicates: ties
    relevant = torch.zeros(20, len(candidates), dtype=torch.bool)
    for q in range(20):
        relevant[q, q] = True  # one copy of a duplicated candidate is relevant, the others tie with it
    chunked = catalogue_metrics(queries, array_chunks(candidates, 16), relevance_of(relevant))
    # the whole matrix with exact ties (a product's copies scored once: BLAS may round copies differently)
    expected = whole_matrix(queries, candidates, relevant, torch.from_numpy(queries @ base.T)[:, copies])
    assert chunked == pytest.approx(expected, abs=1e-6)
    assert expected["R@1"] == pytest.approx((10 / 4 + 10 / 2) / 20)  # four copies tie for the first 10, two after


def test_index_recall_at_10_is_measured_against_exact_search():
    rng = np.random.default_rng(7)
    centres = unit(50, 32, 8)
    candidates = centres[rng.integers(0, 50, 20000)] + 0.3 * rng.standard_normal((20000, 32)).astype(np.float32)
    candidates /= np.linalg.norm(candidates, axis=1, keepdims=True)
    queries = candidates[:200] + 0.05 * rng.standard_normal((200, 32)).astype(np.float32)
    _, exact = exact_topk(queries, array_chunks(candidates, 4096)(), 10)
    recall = {}
    for kind, nprobe in (("ivf-flat", 1), ("ivf-flat", 64), ("ivf-sq8", 64)):
        index = FaissIndex(32, kind, lists=64, nprobe=nprobe).build(array_chunks(candidates, 4096), len(candidates))
        _, found = index.search(queries, 10)
        recall[kind, nprobe] = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found.tolist(), exact.tolist())])
    assert recall["ivf-flat", 64] == 1.0  # every list scanned: exact
    assert recall["ivf-flat", 1] < recall["ivf-flat", 64]  # one list of 64 misses neighbours in the others
    assert recall["ivf-sq8", 64] > 0.9  # 8-bit codes reorder a few near-ties


def test_index_metrics_read_the_ranking_of_the_lists():
    found = torch.tensor([[3, 1, 2], [0, -1, -1]])  # query 1: the index found one candidate only
    relevant = {0: {1}, 1: {5}}
    metrics = index_metrics(found, lambda i, idx: torch.tensor([int(c) in relevant[i] for c in idx]),
                            torch.tensor([1, 1]), ks=(1, 2), ndcg_k=2)
    assert metrics["R@1"] == 0.0 and metrics["R@2"] == pytest.approx(0.5)
    assert metrics["nDCG@2"] == pytest.approx(0.5 * (1 / np.log2(3)))

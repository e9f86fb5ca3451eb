"""Ranking metrics of a score matrix against relevance: R@k and nDCG@k, with ties counted fairly.

- R@k (recall at k, as retrieval papers use it): the share of queries with at least one relevant candidate in
  the top k. With one relevant candidate per query this is the usual Recall@k.
- nDCG@k: binary gains, discount 1 / log2(1 + rank), normalised by the ideal ranking of the query's relevant
  candidates (min(|relevant|, k) of them at the top).

Both are the expected values under a random order of tied candidates, computed exactly (no sampling): a
bag-of-words scorer ties often, and breaking ties by index would reward whatever order the gallery has.
A score that is not finite (NaN or infinite: a diverged model's) ranks below every finite score, and a relevant
candidate scored so is never found: an all-NaN score matrix scores 0, not a tie that puts everything in the top k.
Torch only; this module knows nothing of products or models.
"""
from __future__ import annotations

from typing import Sequence

import torch

KS = (1, 5, 10)
NDCG_K = 10


def recall_at_k(scores: torch.Tensor, positive: torch.Tensor, ks: Sequence[int] = KS) -> dict[str, float]:
    """scores: [Q, C]; positive: [Q] index of each query's only relevant candidate."""
    relevant = torch.zeros_like(scores, dtype=torch.bool)
    relevant[torch.arange(scores.shape[0]), positive] = True
    return {key: float(value.mean()) for key, value in per_query_metrics(scores, relevant, ks, ndcg_k=None).items()}


def ranking_metrics(
    scores: torch.Tensor, relevant: torch.Tensor, ks: Sequence[int] = KS, ndcg_k: int | None = NDCG_K
) -> dict[str, float]:
    """Means over queries of `per_query_metrics`."""
    return {key: float(value.mean()) for key, value in per_query_metrics(scores, relevant, ks, ndcg_k).items()}


def per_query_metrics(
    scores: torch.Tensor, relevant: torch.Tensor, ks: Sequence[int] = KS, ndcg_k: int | None = NDCG_K
) -> dict[str, torch.Tensor]:
    """scores: [Q, C] float; relevant: [Q, C] bool. Returns {"R@k": [Q], "nDCG@k": [Q]} of expected values.

    A query without relevant candidates scores 0 on every metric. Non-finite scores rank last and never hit (a
    relevant candidate scored NaN is a miss that still counts in the ideal DCG).
    """
    scores = scores.double()
    finite = torch.isfinite(scores)
    scores = scores.masked_fill(~finite, float("-inf"))
    findable = relevant & finite  # relevant candidates a ranking can find
    count = scores.shape[1]
    ascending = scores.sort(dim=1).values.contiguous()
    # Per candidate: how many candidates score strictly higher, and how many (itself included) score the same.
    higher = count - torch.searchsorted(ascending, scores.contiguous(), right=True)  # [Q, C]
    group = count - torch.searchsorted(ascending, scores.contiguous(), right=False) - higher  # [Q, C], >= 1
    has_relevant = relevant.any(1)
    out: dict[str, torch.Tensor] = {}

    # R@k: the best-scored relevant candidate's tie group decides. With h candidates above it, a group of g
    # tied candidates of which r are relevant, and s = k - h free slots: P(hit) = 1 - C(g - r, s) / C(g, s).
    best = scores.masked_fill(~findable, float("-inf")).max(1).values[:, None]  # [Q, 1]
    above = (scores > best).sum(1).double()
    tied = (scores == best).sum(1).double()
    tied_relevant = ((scores == best) & findable).sum(1).double()
    can_hit = findable.any(1)
    for k in ks:
        slots = (k - above).clamp(min=0.0)
        miss = _choose_ratio(tied - tied_relevant, tied, slots)
        hit = torch.where(slots >= tied, torch.ones_like(slots), 1.0 - miss)
        out[f"R@{k}"] = torch.where(can_hit & (slots > 0), hit, torch.zeros_like(hit)).float()

    # nDCG@k: a relevant candidate in a tie group spanning ranks h+1 .. h+g sits at each of them with
    # probability 1/g, so its expected gain is (D[h+g] - D[h]) / g with D[n] the summed discounts of ranks 1..n
    # (capped at k).
    if ndcg_k is not None:
        ranks = torch.arange(1, count + 1, dtype=torch.float64)
        discount = torch.where(ranks <= ndcg_k, 1.0 / torch.log2(ranks + 1), torch.zeros_like(ranks))
        cumulative = torch.cat([torch.zeros(1, dtype=torch.float64), discount.cumsum(0)])  # D[0..C]
        gain = (cumulative[higher + group] - cumulative[higher]) / group.double()
        dcg = (gain * findable).sum(1)
        ideal = cumulative[relevant.sum(1).clamp(max=count)]
        out[f"nDCG@{ndcg_k}"] = torch.where(has_relevant, dcg / ideal.clamp_min(1e-12), torch.zeros_like(dcg)).float()
    return out


def _choose_ratio(n: torch.Tensor, m: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """C(n, s) / C(m, s) for n <= m, elementwise; 0 where s > n."""
    valid = s <= n
    n_, s_ = torch.where(valid, n, s), s  # avoid lgamma of negative numbers where the ratio is 0 anyway
    log_ratio = (
        torch.lgamma(n_ + 1) - torch.lgamma(n_ - s_ + 1) - torch.lgamma(m + 1) + torch.lgamma((m - s_).clamp(min=0) + 1)
    )
    return torch.where(valid, log_ratio.exp(), torch.zeros_like(log_ratio))

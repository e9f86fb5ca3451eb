"""Nearest-neighbour search of query embeddings among many candidate embeddings, and ranking metrics over it.

Candidates arrive as chunks (an iterable of [n_i, D] float32 arrays: slices of an array in memory, or the row
groups of a Parquet file read one at a time), so memory is bounded by a chunk, a block of queries and the
running top k, never by the number of candidates:

- `exact_topk(queries, chunks, k)`: the exact top k by inner product (cosine for unit vectors), merged chunk by
  chunk; equal to ranking the whole score matrix.
- `catalogue_metrics(queries, chunks, relevant, ...)`: R@k and nDCG@10 with ties counted as a random order,
  exactly as `model.metrics.per_query_metrics` on the whole [Q, C] score matrix, in two passes over the
  chunks: the top 10 gives each query's 10th best score t; the second pass collects every candidate scoring
  >= t (ties at t included) and counts each query's relevant candidates. The metrics only depend on those.
- `FaissIndex`: an approximate index (faiss IVF: k-means lists, each query scans `nprobe` of them) over the
  same chunks, for catalogues where exact search is too slow; `index_metrics` scores its top-k lists.

Relevance is a function of a block of queries and a range of candidates (`relevant(q_start, q_stop, c_start,
c_stop) -> [q, c] bool`), so it is never materialised for the whole catalogue either. Torch and numpy; faiss
is imported only by `FaissIndex`. This module knows nothing about products or models.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from model.metrics import KS, NDCG_K, per_query_metrics

Relevance = Callable[[int, int, int, int], torch.Tensor]
FAR = -1e9  # a score below any cosine: stands for relevant candidates that rank beyond the top


def _as_tensor(array) -> torch.Tensor:
    if isinstance(array, torch.Tensor):
        return array.float()
    array = np.ascontiguousarray(array, dtype=np.float32)
    return torch.from_numpy(array if array.flags.writeable else array.copy())  # Arrow buffers are read-only


def exact_topk(queries, chunks: Iterable, k: int, query_block: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k candidates of each query by inner product. queries: [Q, D]; chunks: [n_i, D] arrays in candidate
    order. Returns (scores [Q, k'], indices [Q, k']) best first, k' = min(k, number of candidates)."""
    q = _as_tensor(queries)
    best_scores = torch.full((q.shape[0], 0), float("-inf"))
    best_index = torch.zeros((q.shape[0], 0), dtype=torch.long)
    offset = 0
    for chunk in chunks:
        c = _as_tensor(chunk)
        if c.shape[0] == 0:
            continue
        parts_s, parts_i = [], []
        for start in range(0, q.shape[0], query_block):
            scores = q[start:start + query_block] @ c.T  # [qb, n]
            top = scores.topk(min(k, c.shape[0]), dim=1)
            merged_s = torch.cat([best_scores[start:start + query_block], top.values], dim=1)
            merged_i = torch.cat([best_index[start:start + query_block], top.indices + offset], dim=1)
            keep = merged_s.topk(min(k, merged_s.shape[1]), dim=1)
            parts_s.append(keep.values)
            parts_i.append(merged_i.gather(1, keep.indices))
        best_scores, best_index = torch.cat(parts_s), torch.cat(parts_i)
        offset += c.shape[0]
    return best_scores, best_index


def catalogue_metrics(queries, chunks: Callable[[], Iterable], relevant: Relevance, ks: Sequence[int] = KS,
                      ndcg_k: int = NDCG_K, query_block: int = 1024) -> dict[str, float]:
    """Mean R@k and nDCG@ndcg_k of queries [Q, D] over every candidate, exact and tie-aware (see the module
    docstring). chunks: a callable returning a fresh iterable of candidate chunks (two passes are made)."""
    q = _as_tensor(queries)
    depth = max(max(ks), ndcg_k)
    top_scores, _ = exact_topk(q, chunks(), depth, query_block)
    if top_scores.shape[1] == 0:
        raise ValueError("no candidates to search")
    threshold = top_scores[:, -1]  # [Q]: the depth-th best score (the last one when there are fewer)
    kept: list[list[tuple[float, bool]]] = [[] for _ in range(q.shape[0])]
    relevant_total = torch.zeros(q.shape[0], dtype=torch.long)
    offset = 0
    for chunk in chunks():
        c = _as_tensor(chunk)
        for start in range(0, q.shape[0], query_block):
            stop = min(start + query_block, q.shape[0])
            scores = q[start:stop] @ c.T
            rel = relevant(start, stop, offset, offset + c.shape[0])
            relevant_total[start:stop] += rel.sum(1)
            rows, cols = (scores >= threshold[start:stop, None]).nonzero(as_tuple=True)
            for r, score, is_relevant in zip(rows.tolist(), scores[rows, cols].tolist(), rel[rows, cols].tolist()):
                kept[start + r].append((score, is_relevant))
        offset += c.shape[0]
    return _metrics_from_kept(kept, relevant_total, ks, ndcg_k, depth)


def _metrics_from_kept(kept: list[list[tuple[float, bool]]], relevant_total: torch.Tensor, ks, ndcg_k: int,
                       depth: int) -> dict[str, float]:
    """Each query's kept candidates (score, relevant) plus its relevant candidates left out, as far-away rows:
    per_query_metrics on these short rows equals it on the whole matrix (candidates ranked below the depth-th
    score change no metric; the relevant ones among them only count for the ideal DCG and for 'has any')."""
    width = max(len(row) for row in kept) + 2 * depth
    scores = torch.full((len(kept), width), FAR * 2, dtype=torch.float64)  # padding: below everything
    rel = torch.zeros((len(kept), width), dtype=torch.bool)
    for i, row in enumerate(kept):
        for j, (score, is_relevant) in enumerate(row):
            scores[i, j], rel[i, j] = score, is_relevant
        # a list shorter than `depth` (an index that found fewer): unknown candidates fill it up to `depth`,
        # so that relevant ones left out can never enter the top
        filled = max(len(row), depth)
        scores[i, len(row):filled] = FAR / 2
        missing = min(int(relevant_total[i]) - sum(r for _, r in row), depth)
        scores[i, filled:filled + missing] = FAR
        rel[i, filled:filled + missing] = True
    per_query = per_query_metrics(scores, rel, ks, ndcg_k)
    return {key: float(value.mean()) for key, value in per_query.items()}


def index_metrics(top_index: torch.Tensor, relevant_of: Callable[[int, torch.Tensor], torch.Tensor],
                  relevant_total: torch.Tensor, ks: Sequence[int] = KS, ndcg_k: int = NDCG_K) -> dict[str, float]:
    """R@k and nDCG@ndcg_k from approximate top-k lists (an index's answer, taken as the ranking).
    relevant_of(query, candidate indices) -> bool per candidate; relevant_total: [Q] relevant candidates."""
    depth = max(max(ks), ndcg_k)
    kept = []
    for i in range(top_index.shape[0]):
        found = top_index[i][top_index[i] >= 0]  # faiss pads missing results with -1
        # a strictly decreasing score per rank: the list's order is the ranking
        kept.append([(float(-rank), bool(r)) for rank, r in enumerate(relevant_of(i, found).tolist())])
    return _metrics_from_kept(kept, relevant_total, ks, ndcg_k, depth)


def array_chunks(array, size: int = 65536):
    """A callable yielding [size, D] slices of an in-memory array (views, no copies)."""
    return lambda: (array[start:start + size] for start in range(0, len(array), size))


class FaissIndex:
    """A faiss index over unit vectors by inner product. kind: "ivf-flat" (k-means cells holding the vectors as
    they are), "ivf-sq8" (the same with 8-bit scalar-quantised vectors, a quarter of the memory) or "hnsw" (a
    graph, `hnsw_m` links per node, `ef_search` candidates explored per query). lists: IVF cells (default about
    sqrt(N)), trained on a sample of at most `train_size` candidates; nprobe: cells scanned per query."""

    KINDS = ("ivf-flat", "ivf-sq8", "hnsw")

    def __init__(self, dim: int, kind: str = "ivf-flat", lists: int | None = None, nprobe: int = 32,
                 hnsw_m: int = 32, ef_search: int = 128):
        import logging

        loader = logging.getLogger("faiss.loader")  # notes on which CPU build it loads: debug only, not INFO
        if not loader.isEnabledFor(logging.DEBUG):
            loader.setLevel(logging.WARNING)
        import faiss

        if kind not in self.KINDS:
            raise ValueError(f"index kind must be one of {self.KINDS}, got {kind!r}")
        self.faiss, self.dim, self.kind, self.lists, self.nprobe = faiss, dim, kind, lists, nprobe
        self.hnsw_m, self.ef_search = hnsw_m, ef_search
        self.index = None
        self.count = 0

    def build(self, chunks: Callable[[], Iterable], count: int, train_size: int = 65536, seed: int = 0) -> "FaissIndex":
        """Train on an evenly spaced sample of the candidates, then add them chunk by chunk."""
        faiss = self.faiss
        if self.kind == "hnsw":
            self.index = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efSearch = self.ef_search
        else:
            lists = self.lists or max(1, min(int(count ** 0.5), count // 39))
            self.quantizer = quantizer = faiss.IndexFlatIP(self.dim)  # the index refers to it: keep it alive
            if self.kind == "ivf-flat":
                self.index = faiss.IndexIVFFlat(quantizer, self.dim, lists, faiss.METRIC_INNER_PRODUCT)
            else:
                self.index = faiss.IndexIVFScalarQuantizer(quantizer, self.dim, lists, faiss.ScalarQuantizer.QT_8bit,
                                                           faiss.METRIC_INNER_PRODUCT)
            self.index.nprobe = min(self.nprobe, lists)
            self.index.train(self._sample(chunks, count, train_size, seed))
        for chunk in chunks():
            self.index.add(np.ascontiguousarray(chunk, dtype=np.float32))
        self.count = self.index.ntotal
        return self

    @staticmethod
    def _sample(chunks, count: int, size: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(count, size=min(size, count), replace=False))
        parts, offset = [], 0
        for chunk in chunks():
            n = len(chunk)
            local = chosen[(chosen >= offset) & (chosen < offset + n)] - offset
            if len(local):
                parts.append(np.asarray(chunk, dtype=np.float32)[local])
            offset += n
        return np.ascontiguousarray(np.concatenate(parts))

    def search(self, queries, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        scores, index = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return torch.from_numpy(scores), torch.from_numpy(index).long()

    def save(self, path: str) -> None:
        self.faiss.write_index(self.index, path)

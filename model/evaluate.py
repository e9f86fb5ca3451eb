"""Retrieval evaluation on the held-out products: R@1, R@5, R@10 in five directions, and two baselines.

Every held-out product gives one query of each kind and one candidate of each kind; the gallery of every
direction is all held-out products, and a query's only relevant candidate is its own product.
- queries: q^t a shopper-style text (`data.query_text` of its title), q^i its raw image re-framed as a second
  photo (`images.query_view`), q^mm both. Fixed by product id.
- candidates: c^mm the raw title and raw image, c^i the raw image, c^t the raw title. Never co-augmented.
- directions: t->mm, i->mm, mm->mm, t->i, i->t (query -> candidate).
Recall counts ties fairly: a query whose positive ties with n other candidates at the cut-off scores the
expected recall of a random order among them. The bag-of-words baseline ranks c^mm by the TF-IDF cosine of
q^t with the candidate's title (text is all it can read), so it only has a t->mm figure.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Any, Sequence

import torch

from model import images as image_ops
from model.config import MoonConfig
from model.data import SHARD_COLUMNS, is_held_out, product_records, product_rng, query_text
from model.tokenizer import build_tokenizer, words

DIRECTIONS = {
    "t->mm": ("q_t", "c_mm"),
    "i->mm": ("q_i", "c_mm"),
    "mm->mm": ("q_mm", "c_mm"),
    "t->i": ("q_t", "c_i"),
    "i->t": ("q_i", "c_t"),
}
KS = (1, 5, 10)


def recall_at_k(scores: torch.Tensor, positive: torch.Tensor, ks: Sequence[int] = KS) -> dict[str, float]:
    """scores: [Q, C]; positive: [Q] index of each query's relevant candidate. Expected recall under a random
    order of tied candidates."""
    target = scores.gather(1, positive[:, None])  # [Q, 1]
    higher = (scores > target).sum(1).float()  # [Q]
    tied = (scores == target).sum(1).float() - 1  # [Q], other candidates with the same score
    out = {}
    for k in ks:
        hit = ((k - higher) / (tied + 1)).clamp(0.0, 1.0)
        out[f"R@{k}"] = float(hit.mean())
    return out


def held_out_records(run_uri: str, fraction: float, limit: int | None = None) -> list[dict[str, Any]]:
    """The evaluation split's product records (the first `limit` by product id if given), read with pyarrow
    from the run's committed shards."""
    import pyarrow.parquet as pq

    from augment import manifest, storage

    files = manifest.data_files(run_uri)
    if not files:
        raise FileNotFoundError(f"{run_uri}: no committed shards in its manifest")
    records = []
    for file in files:
        fs, path = storage.filesystem(file)
        parquet = pq.ParquetFile(path, filesystem=fs)
        columns = [c for c in SHARD_COLUMNS if c in parquet.schema_arrow.names]
        for batch in parquet.iter_batches(batch_size=256, columns=columns):
            data = batch.to_pydict()
            keep = [i for i, pid in enumerate(data["product_id"]) if is_held_out(pid, fraction)]
            records += product_records({k: [v[i] for i in keep] for k, v in data.items()})
    return sorted(records, key=lambda r: r["product_id"])[:limit]


def evaluation_inputs(records: Sequence[dict[str, Any]], cfg: MoonConfig) -> dict[str, list]:
    """Query and candidate inputs of each held-out product (texts as strings, images as PIL images)."""
    size, data = cfg.vision.image_size, cfg.data
    raw = [image_ops.decode(r["image"]) for r in records]
    return {
        "query_text": [
            query_text(r["title"], r["query_terms"], data.query_text, data.keyword_keep,
                       product_rng(r["product_id"], "query-text"))
            for r in records
        ],
        "query_image": [
            image_ops.query_view(im, size, product_rng(r["product_id"], "query-image")) for r, im in zip(records, raw)
        ],
        "candidate_text": [r["title"] for r in records],
        "candidate_image": [image_ops.candidate_view(im, size) for im in raw],
    }


@torch.no_grad()
def embed_views(model, cfg: MoonConfig, inputs: dict[str, list], batch_size: int = 64) -> dict[str, torch.Tensor]:
    model.eval()
    tokenizer = build_tokenizer(cfg.text)
    device = next(model.parameters()).device
    out: dict[str, list[torch.Tensor]] = {name: [] for name in ("q_t", "q_i", "q_mm", "c_mm", "c_i", "c_t")}
    for start in range(0, len(inputs["query_text"]), batch_size):
        part = {k: v[start : start + batch_size] for k, v in inputs.items()}
        q_ids, q_mask = (t.to(device) for t in tokenizer(part["query_text"]))
        c_ids, c_mask = (t.to(device) for t in tokenizer(part["candidate_text"]))
        q_vis = model.embed_images(image_ops.to_tensor(part["query_image"], cfg.vision.mean, cfg.vision.std).to(device))
        c_vis = model.embed_images(image_ops.to_tensor(part["candidate_image"], cfg.vision.mean, cfg.vision.std).to(device))
        out["q_t"].append(model.encode(text=q_ids, text_mask=q_mask).embedding)
        out["q_i"].append(model.encode(visual=q_vis).embedding)
        out["q_mm"].append(model.encode(text=q_ids, text_mask=q_mask, visual=q_vis).embedding)
        out["c_mm"].append(model.encode(text=c_ids, text_mask=c_mask, visual=c_vis).embedding)
        out["c_i"].append(model.encode(visual=c_vis).embedding)
        out["c_t"].append(model.encode(text=c_ids, text_mask=c_mask).embedding)
    return {name: torch.cat(parts).float().cpu() for name, parts in out.items()}


def evaluate_model(model, cfg: MoonConfig, records: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    embeddings = embed_views(model, cfg, evaluation_inputs(records, cfg))
    return {direction: chunked_recall(embeddings[q], embeddings[c]) for direction, (q, c) in DIRECTIONS.items()}


def chunked_recall(queries: torch.Tensor, candidates: torch.Tensor, chunk: int = 1024) -> dict[str, float]:
    """recall_at_k of queries[i] -> candidates[i], scoring `chunk` queries at a time (bounded memory)."""
    sums: dict[str, float] = {}
    for start in range(0, queries.shape[0], chunk):
        scores = queries[start : start + chunk] @ candidates.T  # [chunk, C]
        positive = torch.arange(start, start + scores.shape[0])
        for key, value in recall_at_k(scores, positive).items():
            sums[key] = sums.get(key, 0.0) + value * scores.shape[0]
    return {key: value / queries.shape[0] for key, value in sums.items()}


def bag_of_words_scores(queries: Sequence[str], documents: Sequence[str]) -> torch.Tensor:
    """TF-IDF cosine similarity [Q, C], IDF smoothed as log((1 + N) / (1 + df)) + 1 over the documents."""
    docs = [words(d) for d in documents]
    df = Counter(w for d in docs for w in set(d))
    idf = {w: math.log((1 + len(docs)) / (1 + n)) + 1 for w, n in df.items()}
    vocab = {w: i for i, w in enumerate(sorted(idf))}

    def vectors(texts: Sequence[list[str]]) -> torch.Tensor:
        matrix = torch.zeros(len(texts), len(vocab))
        for row, tokens in enumerate(texts):
            for w, n in Counter(tokens).items():
                if w in vocab:
                    matrix[row, vocab[w]] = n * idf[w]
        return torch.nn.functional.normalize(matrix, dim=1)

    return vectors([words(q) for q in queries]) @ vectors(docs).T


def evaluate_bag_of_words(cfg: MoonConfig, records: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    data = cfg.data
    queries = [
        query_text(r["title"], r["query_terms"], data.query_text, data.keyword_keep,
                   product_rng(r["product_id"], "query-text"))
        for r in records
    ]
    scores = bag_of_words_scores(queries, [r["title"] for r in records])
    return {"t->mm": recall_at_k(scores, torch.arange(len(records)))}


def format_table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """Rows: model x direction; columns: R@1, R@5, R@10 in percent."""
    lines = [f"{'model':<24} {'direction':<8} " + " ".join(f"{'R@' + str(k):>7}" for k in KS)]
    for name, directions in results.items():
        for direction in DIRECTIONS:
            if direction in directions:
                row = directions[direction]
                lines.append(f"{name:<24} {direction:<8} " + " ".join(f"{100 * row[f'R@{k}']:7.2f}" for k in KS))
    return "\n".join(lines)

"""The trained bag-of-words baseline: a text-only bi-encoder whose embedding is the mean of learned word vectors.

It sees titles only (no image, no enriched title, no variant), hashes words as the `hash` tokenizer does, and is
trained on the training products with the model's inter-product loss: InfoNCE of each product's training text
query (`data.train_queries`, drawn as for the model) against the titles of the batch, same-category pairs as
mined negatives, other relevant products of the batch left out of the negatives, temperature `loss.tau`.
At evaluation it ranks candidates by their titles on the protocol's text queries (t->mm).

It answers one question: how far does word matching with learned word similarities go on these queries? The
model has to beat it to show that it adds something. Plain torch on one process; no Ray.
"""
from __future__ import annotations

import logging
import random
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from model.config import MoonConfig
from model.data import pair_batches, query_relevance, training_query
from model.evaluate import ranking_metrics, text_queries
from model.losses import info_nce
from model.tokenizer import PAD, HashTokenizer

log = logging.getLogger(__name__)


class WordMean(nn.Module):
    """Text -> L2-normalised mean of its words' learned vectors (padding excluded)."""

    def __init__(self, vocab_size: int, dim: int):
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocab_size, dim, mode="mean", padding_idx=PAD)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.embedding(ids), dim=-1)


def train_word_mean(records: Sequence[dict[str, Any]], cfg: MoonConfig, epochs: int = 30, lr: float = 0.01,
                    dim: int = 64, seed: int = 0) -> tuple[WordMean, HashTokenizer]:
    """Train the baseline on training-split product records; returns the model and its tokenizer. Fewer than
    two records (no pair to learn from) is a ValueError, never a baseline trained on nothing."""
    if len(records) < 2:
        raise ValueError(f"the trained bag-of-words baseline needs at least two training products, got {len(records)}")
    torch.manual_seed(seed)
    rng = random.Random(seed)
    tokenizer = HashTokenizer(cfg.text.vocab_size, cfg.text.context_length)
    model = WordMean(cfg.text.vocab_size, dim)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for epoch in range(epochs):
        total, steps = 0.0, 0
        for batch, _ in pair_batches(records, cfg.train.batch_size, rng):
            drawn = [training_query(r, cfg.data, rng) for r in batch]
            queries = model(tokenizer([text for text, _ in drawn])[0])
            titles = model(tokenizer([r["title"] for r in batch])[0])
            exclude = query_relevance([key for _, key in drawn], batch)
            loss = info_nce(queries, titles, torch.arange(len(batch)), cfg.loss.tau, exclude=exclude)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, steps = total + loss.item(), steps + 1
        losses.append(total / max(steps, 1))
        log.debug("bag-of-words baseline epoch %d/%d loss %.4f", epoch + 1, epochs, losses[-1])  # -v shows each
    if losses:
        log.info("bag-of-words baseline: %d epochs on %d products, loss %.4f -> %.4f", epochs, len(records),
                 losses[0], losses[-1])
    return model.eval(), tokenizer


@torch.no_grad()
def evaluate_word_mean(model: WordMean, tokenizer: HashTokenizer, cfg: MoonConfig,
                       records: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """t->mm on the protocol's text queries, candidates ranked by their titles."""
    queries = text_queries(records, cfg.data)
    q = model(tokenizer(queries.texts)[0])
    c = model(tokenizer([r["title"] for r in records])[0])
    return {"t->mm": {**ranking_metrics(q @ c.T, queries.relevant), "queries": len(queries.texts)}}

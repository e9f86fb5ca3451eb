"""Retrieval evaluation on the held-out products: R@1/5/10 and nDCG@10 in five directions, and baselines.

The gallery of every direction is all held-out products, as candidates: c^mm the raw title and raw image, c^i
the raw image, c^t the raw title (never co-augmented). Queries, by `data.eval_queries`:

- attributes (default): text queries are shopper-intent queries built from the held-out products' labels
  (`data.query_attributes`, model/queries.py), one per distinct label combination; the relevant candidates of
  a text query are every held-out product with those labels. Titles are never read to make a query.
- title: one text query per product from its own title (`data.query_text`), relevant: that product only.

Whatever the text protocol, q^i is a product's raw image re-framed as a second photo (`images.query_view`) and
q^mm is that photo with the product's own text (its attribute query, or its title query); their only relevant
candidate is their product. Directions: t->mm and t->i use the text queries; i->mm, mm->mm and i->t one query
per product. Everything is fixed by product id. Metrics (model/metrics.py) count ties as a random order.

Baselines on the same queries and relevance: `evaluate_bag_of_words` ranks c^mm by the TF-IDF cosine of the
text query with the candidate's title; the trained word-embedding baseline lives in model/bow.py.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from collections import Counter
from typing import Any, Sequence

import torch

from model import images as image_ops
from model.config import MoonConfig
from model.data import (
    Skipped, checked_label_columns, is_held_out, product_records, product_rng, query_text, shard_columns,
    unfinished_run, warn_once,
)
from model.metrics import KS, NDCG_K, ranking_metrics, recall_at_k  # noqa: F401  (recall_at_k re-exported)
from model.queries import attribute_queries, attribute_query, label_key
from model.tokenizer import build_tokenizer, words

log = logging.getLogger(__name__)

# direction -> (query view, candidate view); text queries ("q_t") follow the protocol, the others are per product.
DIRECTIONS = {
    "t->mm": ("q_t", "c_mm"),
    "i->mm": ("q_i", "c_mm"),
    "mm->mm": ("q_mm", "c_mm"),
    "t->i": ("q_t", "c_i"),
    "i->t": ("q_i", "c_t"),
}
METRICS = tuple(f"R@{k}" for k in KS) + (f"nDCG@{NDCG_K}",)


class ProtocolError(ValueError):
    """The evaluation protocol cannot be built from these products (e.g. no labels for attribute queries)."""


@dataclasses.dataclass
class TextQueries:
    texts: list[str]  # one per query
    relevant: torch.Tensor  # [Q, N] bool over the held-out products
    protocol: str  # attributes | title


class SplitRecords(list):
    """The product records of a split (a list), with the label columns they were read with (`attributes`: those
    the shards have, check_label_columns) and the products skipped for want of a usable image (`skipped`)."""

    def __init__(self, records, attributes: tuple[str, ...], skipped: Skipped):
        super().__init__(records)
        self.attributes, self.skipped = attributes, skipped


def split_records(run_uri: str, fraction: float, held_out: bool | None = True, limit: int | None = None,
                  attributes: Sequence[str] = (), quiet: bool = False) -> SplitRecords:
    """The product records of the evaluation split (held_out=False: the training split; None: every product),
    sorted by product id, the first `limit` if given, read with pyarrow from the run's committed shards.

    Every shard is checked before any is read (checked_label_columns); label columns no shard has are left out.
    Warnings, one line each: a run whose saved plan has shards not committed yet, absent label columns, and the
    products skipped without a usable image (counted over the products read: with a `limit`, the ones up to it).
    `quiet` leaves out the first two, for a caller that has said them already (the trainer's validation). With a
    `limit` only the shards that hold those products are read whole (`_first_records`)."""
    from augment.core import manifest

    files = manifest.committed_data_files(run_uri)
    unfinished = None if quiet else unfinished_run(run_uri, files)
    if unfinished:
        warn_once(unfinished)
    attributes = checked_label_columns(files, attributes, warn=not quiet, where=run_uri)
    columns = shard_columns(attributes)
    wanted = lambda pid: held_out is None or is_held_out(pid, fraction) == held_out  # noqa: E731
    skipped = Skipped()
    if limit is None:
        records = []
        for file in files:
            records += _file_records(file, columns, wanted, attributes, skipped)
    else:
        records = _first_records(files, columns, wanted, attributes, skipped, limit)
    records = _first_of_each_id(records, skipped)
    if skipped:
        split = {True: "held-out", False: "training", None: "all"}[held_out]
        log.warning("%s (%s split of %s)", skipped.describe(), split, run_uri)
    return SplitRecords(sorted(records, key=lambda r: r["product_id"])[:limit], attributes, skipped)


def _first_of_each_id(records: list[dict[str, Any]], skipped: Skipped) -> list[dict[str, Any]]:
    """The records with the first of each product id (shards of other writers, or merged runs, may repeat one):
    a product evaluated twice is its own copy's false negative. The others are counted as skipped."""
    seen: set[str] = set()
    kept = []
    for record in records:
        if record["product_id"] in seen:
            skipped.add("duplicate", record["product_id"])
        else:
            seen.add(record["product_id"])
            kept.append(record)
    return kept


ID_READ_THREADS = 16  # shards whose product_id column is read at once
SHARD_READ_THREADS = 4  # whole shards (with images) read at once


def _first_records(files: Sequence[str], columns: list[str], wanted, attributes, skipped: Skipped,
                   limit: int) -> list[dict[str, Any]]:
    """The records of the first `limit` wanted product ids that have a usable image. The product_id columns of
    every shard are read first; then only the shards that hold those products, with their images, and more in
    id order while products are skipped: a validation set of 1,000 reads about 1,000 shards, not the run."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=ID_READ_THREADS) as pool:
        ids = sorted((pid, file) for file, pids in zip(files, pool.map(_product_ids, files))
                     for pid in pids if wanted(pid))
    def read(item: tuple[str, set[str]]) -> tuple[list[dict[str, Any]], Skipped]:
        mine = Skipped()  # one per shard, merged in shard order: the examples do not depend on the threads
        return _file_records(item[0], columns, item[1].__contains__, attributes, mine), mine

    records: list[dict[str, Any]] = []
    start = 0
    while len(records) < limit and start < len(ids):
        chunk, start = ids[start:start + limit - len(records)], start + limit - len(records)
        by_file: dict[str, set[str]] = {}
        for pid, file in chunk:
            by_file.setdefault(file, set()).add(pid)
        with concurrent.futures.ThreadPoolExecutor(max_workers=SHARD_READ_THREADS) as pool:
            for part, part_skipped in pool.map(read, sorted(by_file.items())):
                records += part
                skipped.merge(part_skipped)
    return records


def _product_ids(file: str) -> list[str]:
    import pyarrow.parquet as pq

    from augment.core import storage

    fs, path = storage.filesystem(file)
    with pq.ParquetFile(path, filesystem=fs) as parquet:
        return [pid for batch in shard_batches(parquet, ["product_id"], file) for pid in batch.column(0).to_pylist()]


def _file_records(file: str, columns: list[str], wanted, attributes, skipped: Skipped) -> list[dict[str, Any]]:
    """The product records of one shard's rows whose product id is `wanted`."""
    import pyarrow.parquet as pq

    from augment.core import storage

    records = []
    fs, path = storage.filesystem(file)
    with pq.ParquetFile(path, filesystem=fs) as parquet:
        for batch in shard_batches(parquet, columns, file):
            data = batch.to_pydict()
            keep = [i for i, pid in enumerate(data["product_id"]) if wanted(pid)]
            if keep:
                records += product_records({k: [v[i] for i in keep] for k, v in data.items()},
                                           attributes=attributes, skipped=skipped)
    return records


def shard_batches(parquet, columns: list[str], uri: str, batch_size: int = 256):
    """The shard's record batches; a page that cannot be read (the footer was checked) is a one-line ShardError."""
    import pyarrow as pa

    from augment.core.schema import read_failure

    batches = parquet.iter_batches(batch_size=batch_size, columns=columns)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise read_failure(uri, exc) from exc
        yield batch


def held_out_records(run_uri: str, fraction: float, limit: int | None = None,
                     attributes: Sequence[str] = ()) -> list[dict[str, Any]]:
    return split_records(run_uri, fraction, True, limit, attributes)


def title_query(record: dict[str, Any], data) -> str:
    """A product's evaluation query from its own title (the title protocol), fixed by product id."""
    return query_text(record["title"], record["query_terms"], data.query_text, data.keyword_keep,
                      product_rng(record["product_id"], "query-text"))


def text_queries(records: Sequence[dict[str, Any]], data) -> TextQueries:
    """The protocol's text queries over `records` and their relevant products."""
    if data.eval_queries == "title":
        return TextQueries([title_query(r, data) for r in records], torch.eye(len(records), dtype=torch.bool),
                           "title")
    keys = [label_key(r.get("labels")) for r in records]
    queries = attribute_queries(keys)
    if not queries:
        raise ProtocolError(
            f"no evaluated product has any of the labels {list(data.query_attributes)}: carry them as input "
            "columns, name others with data.query_attributes, or evaluate title queries (--queries title)"
        )
    relevant = torch.zeros(len(queries), len(records), dtype=torch.bool)
    for row, (_, _, products) in enumerate(queries):
        relevant[row, products] = True
    return TextQueries([text for _, text, _ in queries], relevant, "attributes")


def product_query_text(record: dict[str, Any], data) -> str:
    """The text half of a product's multimodal query: its attribute query, or its title query."""
    if data.eval_queries == "title":
        return title_query(record, data)
    key = label_key(record.get("labels"))
    return attribute_query(key) if key is not None else ""


def evaluation_inputs(records: Sequence[dict[str, Any]], cfg: MoonConfig) -> dict[str, Any]:
    """Query and candidate inputs (texts as strings, images as PIL images) and the text queries' relevance."""
    size, data = cfg.vision.image_size, cfg.data
    raw = [image_ops.decode(r["image"]) for r in records]
    queries = text_queries(records, data)
    return {
        "text_queries": queries.texts,
        "text_relevant": queries.relevant,
        "protocol": queries.protocol,
        "query_text": [product_query_text(r, data) for r in records],
        "query_image": [
            image_ops.query_view(im, size, product_rng(r["product_id"], "query-image")) for r, im in zip(records, raw)
        ],
        "candidate_text": [r["title"] for r in records],
        "candidate_image": [image_ops.candidate_view(im, size) for im in raw],
    }


@torch.no_grad()
def embed_views(model, cfg: MoonConfig, inputs: dict[str, Any], batch_size: int = 64) -> dict[str, torch.Tensor]:
    model.eval()
    tokenizer = build_tokenizer(cfg.text)
    device = next(model.parameters()).device
    out: dict[str, list[torch.Tensor]] = {name: [] for name in ("q_t", "q_i", "q_mm", "c_mm", "c_i", "c_t")}
    pixels = lambda images: image_ops.to_tensor(images, cfg.vision.mean, cfg.vision.std)  # noqa: E731
    texts = inputs["text_queries"]
    for start in range(0, len(texts), batch_size):
        ids, mask = (t.to(device) for t in tokenizer(texts[start : start + batch_size]))
        out["q_t"].append(model.encode(text=ids, text_mask=mask).embedding)
    for start in range(0, len(inputs["query_text"]), batch_size):
        part = {k: inputs[k][start : start + batch_size]
                for k in ("query_text", "query_image", "candidate_text", "candidate_image")}
        q_ids, q_mask = (t.to(device) for t in tokenizer(part["query_text"]))
        q_vis = model.embed_images(pixels(part["query_image"]).to(device))
        out["q_i"].append(model.encode(visual=q_vis).embedding)
        out["q_mm"].append(model.encode(text=q_ids, text_mask=q_mask, visual=q_vis).embedding)
        for name, embedding in encode_candidates(model, tokenizer, part["candidate_text"],
                                                 pixels(part["candidate_image"])).items():
            out[name].append(embedding)
    return {name: torch.cat(parts).float().cpu() for name, parts in out.items()}


@torch.no_grad()
def encode_candidates(model, tokenizer, texts: Sequence[str], pixels: torch.Tensor) -> dict[str, torch.Tensor]:
    """One batch of candidates (titles, [B, 3, S, S] normalised pixels) -> c_mm, c_i, c_t embeddings [B, D]."""
    device = next(model.parameters()).device
    ids, mask = (t.to(device) for t in tokenizer(list(texts)))
    visual = model.embed_images(pixels.to(device))
    return {"c_mm": model.encode(text=ids, text_mask=mask, visual=visual).embedding,
            "c_i": model.encode(visual=visual).embedding,
            "c_t": model.encode(text=ids, text_mask=mask).embedding}


def evaluate_model(model, cfg: MoonConfig, records: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    inputs = evaluation_inputs(records, cfg)
    embeddings = embed_views(model, cfg, inputs)
    results = {}
    for direction, (q, c) in DIRECTIONS.items():
        relevant = inputs["text_relevant"] if q == "q_t" else None
        results[direction] = chunked_metrics(embeddings[q], embeddings[c], relevant)
    return results


def chunked_metrics(queries: torch.Tensor, candidates: torch.Tensor, relevant: torch.Tensor | None = None,
                    chunk: int = 1024) -> dict[str, float]:
    """ranking_metrics of queries -> candidates, `chunk` queries at a time (bounded memory). relevant: [Q, C]
    bool, or None for query i -> candidate i. The result also holds the number of queries."""
    sums: dict[str, float] = {}
    count = queries.shape[0]
    for start in range(0, count, chunk):
        scores = queries[start : start + chunk] @ candidates.T  # [chunk, C]
        rows = scores.shape[0]
        if relevant is None:
            part = torch.zeros_like(scores, dtype=torch.bool)
            part[torch.arange(rows), torch.arange(start, start + rows)] = True
        else:
            part = relevant[start : start + rows]
        for key, value in ranking_metrics(scores, part).items():
            sums[key] = sums.get(key, 0.0) + value * rows
    return {**{key: value / count for key, value in sums.items()}, "queries": count}


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
    """TF-IDF over titles on the protocol's text queries: t->mm only (a title is all it reads of c^mm)."""
    queries = text_queries(records, cfg.data)
    scores = bag_of_words_scores(queries.texts, [r["title"] for r in records])
    return {"t->mm": {**ranking_metrics(scores, queries.relevant), "queries": len(queries.texts)}}


def format_table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """Rows: model x direction; columns: R@1, R@5, R@10, nDCG@10 in percent, and the number of queries."""
    lines = [f"{'model':<34} {'direction':<9}" + "".join(f"{m:>9}" for m in METRICS) + f"{'queries':>9}"]
    for name, directions in results.items():
        for direction in DIRECTIONS:
            if direction in directions:
                row = directions[direction]
                cells = "".join(f"{100 * row[m]:9.2f}" if m in row else f"{'-':>9}" for m in METRICS)
                lines.append(f"{name:<34} {direction:<9}{cells}{int(row.get('queries', 0)):>9}")
    return "\n".join(lines)

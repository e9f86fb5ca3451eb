"""Evaluation at catalogue scale: the held-out products' queries against every product of the run.

1. `catalogue_embeddings(model, cfg, run_uri, checkpoint)`: c^mm, c^i and c^t of every product in the run's
   committed shards, computed once, batch by batch, and written as Parquet beside the checkpoint
   (`catalogue-<key>.parquet`: product_id, `labels` (the values of `data.query_attributes`), one fixed-size float32
   list column per view). The key hashes the run's manifest (shards and checksums), the weights file and the
   settings that shape the embeddings, so a file is reused until one of them changes.
2. `evaluate_catalogue(model, cfg, records, store, search)`: the queries of `model.evaluate` (the same text,
   image and multimodal queries of the held-out products) ranked against every catalogue product instead of
   the held-out ones only. Relevant: for a text query of the attribute protocol, every catalogue product with
   its labels (training products included); otherwise the query's own product. `search="exact"` reads the
   candidates one row group at a time (`model.search.catalogue_metrics`: exact, ties as a random order);
   an index kind (`ivf-flat`, `ivf-sq8`, `hnsw`) builds a faiss index over them and scores its top-10 lists.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from model.config import MoonConfig
from model.evaluate import DIRECTIONS, embed_views, evaluation_inputs, text_queries
from model.queries import attribute_queries, label_key
from model.search import FaissIndex, catalogue_metrics, index_metrics

log = logging.getLogger(__name__)

VIEWS = ("c_mm", "c_i", "c_t")
ROW_GROUP = 8192
# Threads that turn batches of shard rows into products and candidate views (image decoding and resizing, which
# PIL does without holding the GIL) while a model on an accelerator embeds earlier batches (bench/bench_catalogue.py;
# two CPU cores: 1.4x the products prepared per second).
DECODE_THREADS = 4
CATALOGUE_LAYOUT = 2  # in the catalogue key: 2, each product id once (files of layout 1 may repeat one)
SEARCHES = ("exact",) + FaissIndex.KINDS


class CatalogueStore:
    """A catalogue embeddings file: ids and labels in memory, embeddings read one row group at a time."""

    def __init__(self, path: str | Path):
        import pyarrow.parquet as pq

        self.path = Path(path)
        self.file = pq.ParquetFile(self.path)
        meta = self.file.schema_arrow.metadata or {}
        self.info = json.loads(meta.get(b"moon.catalogue", b"{}"))
        table = self.file.read(columns=["product_id", "labels"])
        self.product_ids: list[str] = table.column("product_id").to_pylist()
        self.labels: list[list[str | None] | None] = table.column("labels").to_pylist()
        self.dim = self.file.schema_arrow.field("c_mm").type.list_size

    def __len__(self) -> int:
        return len(self.product_ids)

    def chunks(self, view: str) -> Iterator[np.ndarray]:
        """[n, D] float32 arrays of one view, a row group at a time (zero-copy views of Arrow buffers)."""
        for group in range(self.file.num_row_groups):
            column = self.file.read_row_group(group, columns=[view]).column(view).combine_chunks()
            yield column.values.to_numpy(zero_copy_only=False).reshape(-1, self.dim)

    def view(self, view: str) -> np.ndarray:
        return np.concatenate(list(self.chunks(view)))


def catalogue_key(run_uri: str, checkpoint: str | Path, cfg: MoonConfig) -> str:
    from augment.core import manifest

    from model.checkpoint import MODEL_FILE, resolve_checkpoint

    weights = resolve_checkpoint(checkpoint) / MODEL_FILE
    stat = weights.stat()
    shards = sorted((r.shard_id, r.checksum, r.rows_out) for r in manifest.load(run_uri).values())
    facts = {"shards": shards, "weights": [str(weights.resolve()), stat.st_size, stat.st_mtime_ns],
             "image_size": cfg.vision.image_size, "attributes": list(cfg.data.query_attributes),
             "layout": CATALOGUE_LAYOUT}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def catalogue_embeddings(model, cfg: MoonConfig, run_uri: str, checkpoint: str | Path,
                         batch_size: int = 256) -> CatalogueStore:
    """The store of this model's catalogue embeddings for the run, computed now unless already there."""
    from model.checkpoint import resolve_checkpoint

    directory = resolve_checkpoint(checkpoint)
    key = catalogue_key(run_uri, directory, cfg)
    path = directory / f"catalogue-{key}.parquet"
    if path.exists():
        log.info("catalogue embeddings: %s (reused)", path)
        return CatalogueStore(path)
    write_catalogue_embeddings(model, cfg, run_uri, path, batch_size, {"key": key, "data": run_uri})
    return CatalogueStore(path)


@torch.no_grad()
def write_catalogue_embeddings(model, cfg: MoonConfig, run_uri: str, path: str | Path, batch_size: int = 256,
                               info: dict | None = None, threads: int | None = None) -> Path:
    """Embed every product of the run's committed shards (those with a readable image) into `path`, each product
    id once: the first row of an id that shards of other writers, or merged runs, repeat (as the evaluation's
    records are; another copy would be a distractor its own query could not count). `threads` threads read the
    products and decode their images ahead of the model (prepared_batches). By default DECODE_THREADS when the
    model is on an accelerator, and one when it is on the CPU, whose cores the model's forward pass needs
    itself."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from augment.core import manifest
    from model.evaluate import encode_candidates
    from model.tokenizer import build_tokenizer

    files = manifest.committed_data_files(run_uri)
    model.eval()
    if threads is None:
        threads = 1 if next(model.parameters()).device.type == "cpu" else DECODE_THREADS
    tokenizer = build_tokenizer(cfg.text)
    dim = cfg.text.width
    schema = pa.schema(
        [pa.field("product_id", pa.string()), pa.field("labels", pa.list_(pa.string()))]
        + [pa.field(v, pa.list_(pa.float32(), dim)) for v in VIEWS],
        metadata={"moon.catalogue": json.dumps({**(info or {}), "attributes": list(cfg.data.query_attributes)})},
    )
    path = Path(path)
    partial = path.with_suffix(".parquet.partial")
    done, started, pending = 0, time.time(), []
    seen: set[str] = set()
    repeated = 0
    with pq.ParquetWriter(partial, schema) as writer:
        for records, pixels in prepared_batches(files, cfg, batch_size, threads):
            first = [i for i, r in enumerate(records) if r["product_id"] not in seen and not seen.add(r["product_id"])]
            if len(first) < len(records):
                repeated += len(records) - len(first)
                records, pixels = [records[i] for i in first], pixels[first] if first else None
            if not records:
                continue
            embedded = encode_candidates(model, tokenizer, [r["title"] for r in records], pixels)
            columns_out = {"product_id": [r["product_id"] for r in records],
                           "labels": [r["labels"] for r in records]}
            for view in VIEWS:
                flat = pa.array(embedded[view].float().cpu().numpy().reshape(-1), pa.float32())
                columns_out[view] = pa.FixedSizeListArray.from_arrays(flat, dim)
            pending.append(pa.table(columns_out, schema=schema))
            done += len(records)
            if sum(t.num_rows for t in pending) >= ROW_GROUP:
                writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP)
                pending = []
                log.info("catalogue embeddings: %d products (%.0f/s)", done, done / max(time.time() - started, 1e-9))
        if pending:
            writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP)
    os.replace(partial, path)
    if repeated:
        log.warning("catalogue embeddings: %d rows repeat a product id of an earlier row; each id is embedded once "
                    "(its first row)", repeated)
    log.info("catalogue embeddings: %d products in %.1fs -> %s", done, time.time() - started, path)
    return path


def prepared_batches(files: Sequence[str], cfg: MoonConfig, batch_size: int = 256,
                     threads: int = DECODE_THREADS) -> Iterator[tuple[list[dict[str, Any]], torch.Tensor | None]]:
    """(products, candidate views [B, 3, S, S]) of each batch of `batch_size` rows of the shards, in shard order;
    products without a readable image are left out (model.data.product_records, which logs them), and a batch left
    with none gives ([], None); a damaged page is a one-line ShardError (model.evaluate.shard_batches). The shards
    are read in this thread; `threads` threads make the products and views, at most 2 x `threads` batches ahead of
    the consumer."""
    import collections
    import concurrent.futures

    import pyarrow.parquet as pq

    from augment.core import storage
    from model import images as image_ops
    from model.data import product_records, shard_columns
    from model.evaluate import shard_batches

    def prepare(columns: dict) -> tuple[list[dict[str, Any]], torch.Tensor | None]:
        records = product_records(columns, attributes=cfg.data.query_attributes)
        if not records:
            return records, None
        views = [image_ops.candidate_view(image_ops.decode(r["image"]), cfg.vision.image_size) for r in records]
        return records, image_ops.to_tensor(views, cfg.vision.mean, cfg.vision.std)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        ahead: collections.deque = collections.deque()
        for file in files:
            fs, file_path = storage.filesystem(file)
            with pq.ParquetFile(file_path, filesystem=fs) as parquet:
                columns = [c for c in shard_columns(cfg.data.query_attributes) if c in parquet.schema_arrow.names]
                for batch in shard_batches(parquet, columns, file, batch_size):
                    ahead.append(pool.submit(prepare, batch.to_pydict()))
                    while len(ahead) > 2 * max(1, threads):
                        yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()


def evaluate_catalogue(model, cfg: MoonConfig, records: Sequence[dict[str, Any]], store: CatalogueStore,
                       search: str = "exact") -> dict[str, dict[str, float]]:
    """The held-out products' queries ranked against every product of the store (see the module docstring)."""
    if search not in SEARCHES:
        raise ValueError(f"search must be one of {SEARCHES}, got {search!r}")
    queries = embed_views(model, cfg, evaluation_inputs(records, cfg))
    position = {pid: i for i, pid in enumerate(store.product_ids)}
    missing = [r["product_id"] for r in records if r["product_id"] not in position]
    if missing:
        raise ValueError(f"{len(missing)} held-out products are not in the catalogue embeddings, e.g. {missing[:3]}")
    own = torch.tensor([position[r["product_id"]] for r in records])  # each product's row in the catalogue
    text_relevance = _text_relevance(records, cfg, store, own)
    indexes: dict[str, FaissIndex] = {}  # one per candidate view, built on first use
    results = {}
    for direction, (q, c) in DIRECTIONS.items():
        relevant = text_relevance if q == "q_t" else OwnProduct(own)
        if search == "exact":
            metrics = catalogue_metrics(queries[q], lambda: store.chunks(c), relevant)
        else:
            if c not in indexes:
                indexes[c] = FaissIndex(store.dim, search).build(lambda: store.chunks(c), len(store))
            _, found = indexes[c].search(queries[q].numpy(), 10)
            metrics = index_metrics(found, relevant.of, relevant.totals(len(store)))
        results[direction] = {**metrics, "queries": int(queries[q].shape[0]), "candidates": len(store)}
    return results


class OwnProduct:
    """Each query's only relevant candidate is its own product: target[q] is its catalogue row."""

    def __init__(self, target: torch.Tensor):
        self.target = target

    def __call__(self, qs: int, qe: int, cs: int, ce: int) -> torch.Tensor:  # [q, c] bool
        return self.target[qs:qe, None] == torch.arange(cs, ce)[None, :]

    def of(self, query: int, candidates: torch.Tensor) -> torch.Tensor:
        return candidates == self.target[query]

    def totals(self, count: int) -> torch.Tensor:
        return (self.target < count).long()


class ByLabels:
    """A query's relevant candidates are the products with every label it names. asked: [Q, A] label codes,
    -1 where the query names none; products: [C, A], -1 where the product lacks the label."""

    def __init__(self, asked: torch.Tensor, products: torch.Tensor):
        self.asked, self.products = asked, products

    @staticmethod
    def _match(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return ((q == -1) | (q == p)).all(-1) & (p != -1).any(-1)

    def __call__(self, qs: int, qe: int, cs: int, ce: int) -> torch.Tensor:  # [q, c] bool
        return self._match(self.asked[qs:qe, None, :], self.products[None, cs:ce, :])

    def of(self, query: int, candidates: torch.Tensor) -> torch.Tensor:
        return self._match(self.asked[query][None, :], self.products[candidates])

    def totals(self, count: int, block: int = 65536) -> torch.Tensor:
        return sum(self(0, len(self.asked), start, min(start + block, count)).sum(1)
                   for start in range(0, count, block))


def _text_relevance(records, cfg: MoonConfig, store: CatalogueStore, own: torch.Tensor):
    """Relevance of the protocol's text queries over the catalogue: by labels (attribute protocol: a product is
    relevant when it has every label the query names) or the query's own product (title protocol)."""
    if cfg.data.eval_queries == "title":
        return OwnProduct(own)
    keys = [key for key, _, _ in attribute_queries([label_key(r.get("labels")) for r in records])]
    assert len(keys) == len(text_queries(records, cfg.data).texts)  # the same queries, in the same order
    width = len(cfg.data.query_attributes)
    vocab: dict[str, int] = {}
    code = lambda v: -1 if v is None else vocab.setdefault(v, len(vocab))  # noqa: E731
    stored = [label_key(labels) for labels in store.labels]
    products = torch.tensor([[code(v) for v in (k or (None,) * width)] for k in stored], dtype=torch.long)
    asked = torch.tensor([[code(v) for v in k] for k in keys], dtype=torch.long)
    return ByLabels(asked, products)


def evaluate_catalogue_models(run_uri: str, models: Sequence[tuple], data, records: Sequence[dict[str, Any]],
                              results: dict, search: str = "exact") -> None:
    """`moon eval --candidates catalogue`: for each (checkpoint path, model, config), its catalogue embeddings
    (computed once) and its recall against them, added to `results` as '<label> [catalogue]' (each direction's
    figures hold the number of candidates)."""
    import dataclasses

    for path, model, cfg in models:
        cfg = dataclasses.replace(cfg, data=data)
        store = catalogue_embeddings(model, cfg, run_uri, path)
        started = time.time()
        label = "/".join(Path(path).parts[-2:])
        results[f"{label} [catalogue]"] = evaluate_catalogue(model, cfg, records, store, search)
        print(f"{label}: catalogue of {len(store):,} candidates, {search} search, {time.time() - started:.1f}s")

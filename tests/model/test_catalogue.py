"""Evaluation against the whole catalogue: stored embeddings, exact chunked metrics equal to the whole matrix,
the index path, and `moon eval --candidates catalogue --gallery` with the run report's link."""
import json
import os
import re

import numpy as np
import pytest
import torch

from model.catalogue import CatalogueStore, catalogue_embeddings, evaluate_catalogue, write_catalogue_embeddings
from model.checkpoint import build_model, save_checkpoint
from model.config import load_config
from model.evaluate import DIRECTIONS, embed_views, evaluation_inputs, held_out_records, split_records, text_queries
from model.metrics import per_query_metrics
from model.queries import attribute_queries, label_key, matches
from tests.model.shards import product_rows, write_run


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("catalogue")
    run = write_run(tmp / "run", product_rows(160))
    cfg = load_config("tiny")
    model, built = build_model(cfg, seed=3)
    ckpt = save_checkpoint(tmp / "ckpt" / "epoch-0001", model, built)
    records = held_out_records(str(run), cfg.data.eval_fraction, attributes=cfg.data.query_attributes)
    return tmp, run, model.eval(), built, ckpt, records


def test_embeddings_are_stored_beside_the_checkpoint_once(setup):
    tmp, run, model, cfg, ckpt, records = setup
    store = catalogue_embeddings(model, cfg, str(run), ckpt)
    assert store.path.parent == ckpt and store.path.name.startswith("catalogue-") and len(store) == 160
    written = store.path.stat().st_mtime_ns
    again = catalogue_embeddings(model, cfg, str(run), ckpt)
    assert again.path == store.path and store.path.stat().st_mtime_ns == written  # reused, not recomputed
    # the stored candidates are the evaluation's own embeddings of those products
    held_out = embed_views(model, cfg, evaluation_inputs(records, cfg))
    rows = [store.product_ids.index(r["product_id"]) for r in records]
    for view in ("c_mm", "c_i", "c_t"):
        assert torch.allclose(torch.from_numpy(store.view(view))[rows], held_out[view], atol=1e-5)


def test_exact_catalogue_metrics_equal_the_whole_matrix(setup):
    tmp, run, model, cfg, ckpt, records = setup
    store = catalogue_embeddings(model, cfg, str(run), ckpt)
    results = evaluate_catalogue(model, cfg, records, store)

    catalogue = {r["product_id"]: r for r in split_records(str(run), cfg.data.eval_fraction, held_out=False,
                                                           attributes=cfg.data.query_attributes) + records}
    products = [catalogue[pid] for pid in store.product_ids]
    keys = [key for key, _, _ in attribute_queries([label_key(r["labels"]) for r in records])]
    text_relevant = torch.tensor([[matches(k, label_key(p["labels"])) for p in products] for k in keys])
    assert text_relevant.sum() > len(text_queries(records, cfg.data).relevant.nonzero())  # training products too
    own = torch.zeros(len(records), len(products), dtype=torch.bool)
    for i, r in enumerate(records):
        own[i, store.product_ids.index(r["product_id"])] = True
    queries = embed_views(model, cfg, evaluation_inputs(records, cfg))
    for direction, (q, c) in DIRECTIONS.items():
        scores = queries[q] @ torch.from_numpy(store.view(c)).T
        whole = per_query_metrics(scores.double(), text_relevant if q == "q_t" else own)
        expected = {k: float(v.mean()) for k, v in whole.items()}
        assert {k: results[direction][k] for k in expected} == pytest.approx(expected, abs=1e-6), direction
        assert results[direction]["candidates"] == 160


def test_an_index_that_scans_every_list_gives_the_exact_figures(setup):
    tmp, run, model, cfg, ckpt, records = setup
    store = catalogue_embeddings(model, cfg, str(run), ckpt)
    exact = evaluate_catalogue(model, cfg, records, store)
    indexed = evaluate_catalogue(model, cfg, records, store, search="ivf-flat")  # 3 lists of 160, nprobe 32
    # candidates with a title (titles are unique here); image-only candidates tie (products share a photo),
    # and an index returns tied candidates in its own order where exact search counts them as a random order
    for direction in ("t->mm", "i->mm", "mm->mm", "i->t"):
        assert indexed[direction]["R@10"] == pytest.approx(exact[direction]["R@10"], abs=1e-6)
    with pytest.raises(ValueError):
        evaluate_catalogue(model, cfg, records, store, search="lsh")


@pytest.mark.slow
def test_eval_cli_catalogue_gallery_and_the_run_report_link(tmp_path, capsys):
    from augment.cli import main
    from augment.ops.report import write_report
    from model.evaluations import write_training_record

    run = write_run(tmp_path / "run", product_rows(120))
    write_report(str(run))
    cfg = load_config("tiny")
    for name, trained_here in (("ours", True), ("other", False)):
        model, built = build_model(cfg, seed=0)
        save_checkpoint(tmp_path / name / "epoch-0001", model, built)
        write_training_record(tmp_path / name, str(run) if trained_here else str(tmp_path / "elsewhere"), "tiny")

    argv = ["eval", "--data", str(run), "--checkpoint", str(tmp_path / "other"), "--gallery"]
    assert main(argv) == 0
    assert not (run / "_evaluations.jsonl").exists()  # a model trained elsewhere: nothing recorded

    out = tmp_path / "results" / "eval.json"
    argv = ["eval", "--data", str(run), "--checkpoint", str(tmp_path / "ours"), "--candidates", "catalogue",
            "--gallery", "--gallery-queries", "2", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "ours/epoch-0001 [catalogue]" in printed and "catalogue of 120 candidates, exact search" in printed
    results = json.loads(out.read_text())["results"]
    catalogue = results["ours/epoch-0001 [catalogue]"]
    assert set(catalogue) == set(DIRECTIONS) and catalogue["i->mm"]["candidates"] == 120
    assert (tmp_path / "results" / "eval-gallery.html").exists()
    record = json.loads((run / "_evaluations.jsonl").read_text().splitlines()[-1])
    assert record["results"] == str(out) and record["checkpoints"] == [str(tmp_path / "ours" / "epoch-0001")]

    index = (run / "report" / "index.html").read_text()
    assert "Latest model evaluation" in index
    links = re.findall(r'href="([^"]+)"', index)
    for target in (out, tmp_path / "results" / "eval-gallery.html"):
        relative = os.path.relpath(target, run / "report")
        assert relative in links and (run / "report" / relative).resolve() == target


def test_decoding_ahead_in_threads_writes_the_file_one_thread_writes(setup):
    tmp, run, model, cfg, ckpt, records = setup
    one = write_catalogue_embeddings(model, cfg, str(run), tmp / "one.parquet", batch_size=16, threads=1)
    four = write_catalogue_embeddings(model, cfg, str(run), tmp / "four.parquet", batch_size=16, threads=4)
    a, b = CatalogueStore(one), CatalogueStore(four)
    assert a.product_ids == b.product_ids and len(a) == 160  # ten batches, in shard order
    for view in ("c_mm", "c_i", "c_t"):
        assert np.array_equal(a.view(view), b.view(view))


def test_a_product_id_that_shards_repeat_is_embedded_once_as_its_first_row(setup, caplog):
    """A second row of an id (merged runs, shards of other writers) stayed in the catalogue as a distractor that
    its own product's query could not count, and the evaluation read the last row's embedding for it."""
    tmp, run, model, cfg, ckpt, records = setup
    rows = product_rows(40)
    repeat = dict(rows[30], title="another title for the same id", image=rows[5]["image"])
    merged = write_run(tmp / "merged", rows + [repeat], shard_size=16)
    path = write_catalogue_embeddings(model, cfg, str(merged), tmp / "merged.parquet", batch_size=8)
    assert "1 rows repeat a product id of an earlier row" in caplog.text
    store = CatalogueStore(path)
    assert store.product_ids == [r["product_id"] for r in rows]
    alone = CatalogueStore(write_catalogue_embeddings(model, cfg, str(write_run(tmp / "alone", rows, 16)),
                                                      tmp / "alone.parquet", batch_size=8))
    for view in ("c_mm", "c_i", "c_t"):
        assert np.allclose(store.view(view), alone.view(view), atol=1e-5)

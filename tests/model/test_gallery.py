"""Retrieval galleries: deterministic sample queries, ranks 1/10/50 per model, relevant candidates marked."""
from html.parser import HTMLParser

import pytest

from model.checkpoint import build_model, save_checkpoint
from model.config import load_config
from model.evaluate import embed_views, evaluation_inputs, held_out_records, text_queries
from model.gallery import sample_queries, write_gallery
from tests.model.shards import product_rows, write_run


class Tiles(HTMLParser):
    """The query cards of a page: direction, query key, and per model column its tiles (rank, product, mark)."""

    def __init__(self):
        super().__init__()
        self.cards, self.images = [], 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "article":
            self.cards.append({"direction": a["data-direction"], "query": a["data-query"], "models": []})
        elif tag == "div" and a.get("class") == "model":
            self.cards[-1]["models"].append([])
        elif tag == "figure":
            self.cards[-1]["models"][-1].append((int(a["data-rank"]), a["data-product"], a["data-relevant"] == "1"))
        elif tag == "img":
            self.images += 1
            assert a["src"].startswith("data:image/jpeg;base64,")  # thumbnails embedded, no file referenced


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gallery")
    run = write_run(tmp / "run", product_rows(300))
    cfg = load_config("tiny")
    models = []
    for seed in (0, 1):
        model, built = build_model(cfg, seed=seed)
        path = save_checkpoint(tmp / f"ckpt-s{seed}" / "epoch-0001", model, built)
        models.append((str(path), model.eval(), built))
    records = held_out_records(str(run), cfg.data.eval_fraction, attributes=cfg.data.query_attributes)
    index = write_gallery(tmp / "eval.json", models, cfg.data, records, per_direction=3, page_size=2)
    return tmp, index, models, records, cfg


def parse(path):
    parser = Tiles()
    parser.feed(path.read_text())
    return parser


def test_gallery_pages_are_beside_the_results_and_paginated(gallery):
    tmp, index, _, _, _ = gallery
    assert index == tmp / "eval-gallery.html"
    pages = sorted(p.name for p in (tmp / "eval-gallery").iterdir())
    assert pages == sorted(f"{d}-{n}.html" for d in ("t-mm", "i-mm", "mm-mm", "t-i", "i-t") for n in (1, 2))
    text = index.read_text()
    assert 'href="eval-gallery/i-mm-2.html"' in text and "ckpt-s0/epoch-0001" in text and "ckpt-s1/epoch-0001" in text
    assert "relevant in the top 10: ckpt-s1/epoch-0001" in text
    assert len(parse(tmp / "eval-gallery" / "t-mm-1.html").cards) == 2
    assert len(parse(tmp / "eval-gallery" / "t-mm-2.html").cards) == 1


def test_a_shorter_gallery_removes_the_pages_it_no_longer_has(gallery, tmp_path):
    _, _, models, records, cfg = gallery
    write_gallery(tmp_path / "eval.json", models[:1], cfg.data, records, per_direction=3, page_size=1)
    assert (tmp_path / "eval-gallery" / "t-mm-3.html").exists()
    write_gallery(tmp_path / "eval.json", models[:1], cfg.data, records, per_direction=2, page_size=2)
    assert sorted(p.name for p in (tmp_path / "eval-gallery").glob("t-mm-*")) == ["t-mm-1.html"]
    assert len(parse(tmp_path / "eval-gallery" / "t-mm-1.html").cards[0]["models"]) == 1  # one model, one column


def test_relevant_marks_and_ranks_are_right(gallery):
    tmp, _, models, records, cfg = gallery
    queries = text_queries(records, cfg.data)
    relevant_to = {text: {records[j]["product_id"] for j in row.nonzero().flatten().tolist()}
                   for text, row in zip(queries.texts, queries.relevant)}
    embeddings = [embed_views(m, c, evaluation_inputs(records, c)) for _, m, c in models]
    position = {r["product_id"]: i for i, r in enumerate(records)}
    checked = 0
    for page in (tmp / "eval-gallery").iterdir():
        for card in parse(page).cards:
            direction = card["direction"]
            q_view, c_view = {"t->mm": ("q_t", "c_mm"), "i->mm": ("q_i", "c_mm"), "mm->mm": ("q_mm", "c_mm"),
                              "t->i": ("q_t", "c_i"), "i->t": ("q_i", "c_t")}[direction]
            if q_view == "q_t":
                truth, qi = relevant_to[card["query"]], queries.texts.index(card["query"])
            else:
                truth, qi = {card["query"]}, position[card["query"]]
            assert len(card["models"]) == 2
            for tiles, emb in zip(card["models"], embeddings):
                order = (emb[q_view][qi] @ emb[c_view].T).argsort(descending=True, stable=True)
                ranks = [rank for rank, _, _ in tiles]
                assert ranks[:3] == [1, 10, 50]
                for rank, product, marked in tiles:
                    assert marked == (product in truth)
                    assert records[int(order[rank - 1])]["product_id"] == product
                    checked += 1
    assert checked >= 5 * 3 * 2 * 3


def test_sample_is_deterministic_and_independent_of_order():
    keys = [f"p{i:04d}" for i in range(100)]
    first = [keys[i] for i in sample_queries("i->mm", keys, 5)]
    assert first == [list(reversed(keys))[i] for i in sample_queries("i->mm", list(reversed(keys)), 5)]
    assert first != [keys[i] for i in sample_queries("t->mm", keys, 5)]  # each direction its own sample

"""The trained bag-of-words baseline: a mean of word vectors, trained with InfoNCE on titles."""
import torch
import torch.nn.functional as F

from model.bow import WordMean, evaluate_word_mean, train_word_mean
from model.config import load_config
from model.data import is_held_out, product_records
from model.tokenizer import PAD, HashTokenizer
from tests.model.shards import product_rows

ATTRIBUTES = ("gender", "base_colour", "article_type")


def test_embedding_is_the_normalised_mean_of_word_vectors_without_padding():
    model = WordMean(16, 4)
    ids = torch.tensor([[3, 5, PAD]])
    vectors = model.embedding.weight
    assert torch.allclose(model(ids), F.normalize((vectors[3] + vectors[5]) / 2, dim=-1)[None])


SYNONYMS = {"Red": "scarlet", "Blue": "azure", "Green": "emerald", "Black": "ebony", "Yellow": "amber",
            "Purple": "violet"}


def test_training_learns_words_the_titles_do_not_share_with_the_queries():
    # Labels name colours with words no title holds: only training can tie "scarlet" to "red".
    rows = product_rows(144)
    for row in rows:
        row["base_colour"], row["gender"] = SYNONYMS[row["base_colour"]], None
    records = product_records({k: [r[k] for r in rows] for k in rows[0]}, attributes=ATTRIBUTES)
    train = [r for r in records if not is_held_out(r["product_id"], 0.3)]
    test = [r for r in records if is_held_out(r["product_id"], 0.3)]
    cfg = load_config("tiny", {"data.train_queries": "attributes", "train.batch_size": 16})
    trained, tokenizer = train_word_mean(train, cfg, epochs=10, seed=0)
    torch.manual_seed(0)
    untrained = WordMean(cfg.text.vocab_size, 64).eval()
    before = evaluate_word_mean(untrained, HashTokenizer(cfg.text.vocab_size, 32), cfg, test)["t->mm"]
    after = evaluate_word_mean(trained, tokenizer, cfg, test)["t->mm"]
    combinations = {tuple(r["labels"]) for r in test}  # one query per colour x category held out
    assert after["queries"] == before["queries"] == len(combinations) > 12
    assert before["R@1"] < 0.5 < 0.9 < after["R@1"]


def test_training_says_one_line_at_info_and_each_epoch_only_at_debug(caplog):
    import logging

    rows = product_rows(24)
    records = product_records({k: [r[k] for r in rows] for k in rows[0]}, attributes=ATTRIBUTES)
    cfg = load_config("tiny", {"data.train_queries": "attributes", "train.batch_size": 8})
    with caplog.at_level(logging.INFO, logger="model.bow"):
        train_word_mean(records, cfg, epochs=3, seed=0)
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(info) == 1 and info[0].startswith("bag-of-words baseline: 3 epochs on 24 products, loss ")
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="model.bow"):
        train_word_mean(records, cfg, epochs=3, seed=0)
    assert sum("epoch" in r.getMessage() and r.levelno == logging.DEBUG for r in caplog.records) == 3

"""bench/ner_ceiling.py: gold values become training spans; the trained NER is scored per epoch."""
import importlib.util
import json
from pathlib import Path

import pytest
import spacy

BENCH = Path(__file__).resolve().parents[2] / "bench" / "ner_ceiling.py"


@pytest.fixture(scope="module")
def ceiling():
    spec = importlib.util.spec_from_file_location("ner_ceiling", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def nlp():
    return spacy.blank("en")


def test_gold_spans_exact_offsets_and_labels(ceiling, nlp):
    doc = nlp.make_doc("Acme Running Shoes Leather")
    labels = {"BRAND": ["Acme"], "CATEGORY": ["Running Shoes"], "MATERIAL": ["leather"]}
    assert ceiling.gold_spans(doc, labels) == [(0, 4, "BRAND"), (5, 18, "CATEGORY"), (19, 26, "MATERIAL")]


def test_gold_spans_longest_value_wins_over_the_one_inside_it(ceiling, nlp):
    doc = nlp.make_doc("Acme Engagement rings")
    labels = {"CATEGORY": ["engagement ring", "Engagement rings"]}
    assert ceiling.gold_spans(doc, labels) == [(5, 21, "CATEGORY")]


def test_gold_spans_value_inside_a_word_widens_to_the_word(ceiling, nlp):
    doc = nlp.make_doc("Bass Fishing Lures Hard Bait")
    assert ceiling.gold_spans(doc, {"CATEGORY": ["Lure"]}) == [(13, 18, "CATEGORY")]


def test_gold_spans_every_occurrence_and_unscored_labels_ignored(ceiling, nlp):
    doc = nlp.make_doc("Cotton Shirt Cotton")
    labels = {"MATERIAL": ["Cotton"], "COLOR": ["Shirt"]}
    assert ceiling.gold_spans(doc, labels) == [(0, 6, "MATERIAL"), (13, 19, "MATERIAL")]


def _rows(n, offset=0):
    brands, things = ["Acme", "Zorb", "Kilo", "Vexa"], ["Widget", "Gadget", "Sprocket"]
    rows = []
    for i in range(offset, offset + n):
        brand, thing = brands[i % 4], things[i % 3]
        rows.append({"id": str(i), "title": f"{brand} Red {thing}",
                     "labels": {"BRAND": [brand], "CATEGORY": [thing], "MATERIAL": []}})
    return rows


def test_trained_ner_learns_a_regular_labelling_and_reports_every_epoch(ceiling):
    result = ceiling.trained_figures(_rows(48), _rows(12, offset=48), epochs=6, seed=0, log=lambda *_: None)
    assert result["train_rows"] == 48
    assert len(result["per_epoch_micro_f1"]) == 6
    assert result["best"]["micro_f1"] == max(result["per_epoch_micro_f1"])
    assert result["best"]["micro_f1"] >= 0.9


def test_cli_writes_figures_for_a_gold_file(ceiling, tmp_path, capsys):
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps(row) + "\n" for row in _rows(40)), encoding="utf-8")
    out = tmp_path / "ceiling.json"
    assert ceiling.main([str(gold), "--epochs", "2", "--out", str(out)]) == 0
    figures = json.loads(out.read_text())
    (entry,) = figures["files"]
    assert entry["tune_rows"] + entry["heldout_rows"] == 40
    assert set(entry) >= {"rules", "rules_own_lexicon", "trained_ner"}
    assert entry["rules_own_lexicon"]["lexicon_phrases"] == 4 + 3
    assert "gold.jsonl" in capsys.readouterr().out


def test_cli_refuses_a_file_without_held_out_rows(ceiling, tmp_path, capsys):
    gold = tmp_path / "gold.jsonl"
    rows = [row for row in _rows(40) if not ceiling.select([row], "heldout")][:5]
    gold.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    assert ceiling.main([str(gold), "--epochs", "1"]) == 2
    assert "held-out" in capsys.readouterr().err


def test_best_per_label_takes_each_label_from_the_better_extractor(ceiling):
    rows = [{"id": "1", "title": "Acme Red Widget", "labels": {"BRAND": ["Acme"], "CATEGORY": ["Widget"]}}]
    rules = [[{"label": "BRAND", "text": "Acme", "start": 0, "end": 4},
              {"label": "CATEGORY", "text": "Red", "start": 5, "end": 8}]]
    trained = [[{"label": "BRAND", "text": "Acme Red", "start": 0, "end": 8},
                {"label": "CATEGORY", "text": "Widget", "start": 9, "end": 15}]]
    first = ceiling.summary(ceiling.score(rows, rules))
    second = ceiling.summary(ceiling.score(rows, trained))
    best = ceiling.best_per_label(rows, first, rules, second, trained)
    assert best["from_trained"] == ["CATEGORY"]
    assert best["f1"] == {"BRAND": 1.0, "CATEGORY": 1.0}
    assert best["micro_f1"] == 1.0

"""Lexicon files built from a catalogue's label columns and from the tune part of gold files."""
import json

from ner import lexicon_build
from ner.split import is_heldout


def test_catalogue_values_become_patterns_once_each():
    rows = [{"brandName": "Zorbin", "articleType": "Tshirts"}, {"brandName": "zorbin", "articleType": "Tshirts"},
            {"brandName": "Other", "articleType": "Free Gifts"}]
    out = lexicon_build.lexicon_values(rows)
    assert out["brands_catalog.jsonl"] == [{"label": "BRAND", "pattern": "Zorbin", "id": "zorbin"}]
    assert out["categories_catalog.jsonl"] == [{"label": "CATEGORY", "pattern": "Tshirts", "id": "tshirts"}]


def test_placeholders_are_no_value_of_any_label():
    rows = [{"attr_Material": "NA", "baseColour": "N/A"}, {"attr_Material": "Cotton", "baseColour": "null"}]
    out = lexicon_build.lexicon_values(rows)
    assert out["materials_catalog.jsonl"] == [{"label": "MATERIAL", "pattern": "Cotton", "id": "cotton"}]
    assert "colors_catalog.jsonl" not in out


def test_gold_values_come_from_the_tune_part_only(tmp_path):
    tune = next(f"t{k}" for k in range(100) if not is_heldout(f"t{k}"))
    held = next(f"t{k}" for k in range(100) if is_heldout(f"t{k}"))
    path = tmp_path / "gold.jsonl"
    path.write_text(json.dumps({"id": tune, "title": "x", "labels": {"BRAND": ["Zorbin"]}}) + "\n" +
                    json.dumps({"id": held, "title": "y", "labels": {"BRAND": ["Quelby"]}}) + "\n")
    out = lexicon_build.gold_values([path])
    assert out == {"brands_gold.jsonl": [{"label": "BRAND", "pattern": "Zorbin", "id": "zorbin"}]}


def test_gold_patterns_take_the_labels_and_files_asked_for():
    tune = [f"t{k}" for k in range(100) if not is_heldout(f"t{k}")]
    rows = [{"id": tune[0], "labels": {"BRAND": ["Zorbin"], "CATEGORY": ["Widget"], "MATERIAL": ["Oak"]}},
            {"id": tune[1], "labels": {"CATEGORY": ["widget", "Gizmo"]}}]
    out = lexicon_build.gold_patterns(rows, {"CATEGORY": "cats.jsonl", "MATERIAL": "mats.jsonl"})
    assert out == {"cats.jsonl": [{"label": "CATEGORY", "pattern": "Widget", "id": "widget"},
                                  {"label": "CATEGORY", "pattern": "Gizmo", "id": "gizmo"}],
                   "mats.jsonl": [{"label": "MATERIAL", "pattern": "Oak", "id": "oak"}]}


def test_a_known_spelling_gives_its_id(tmp_path):
    known = tmp_path / "curated.jsonl"
    known.write_text(json.dumps({"label": "CATEGORY", "pattern": "tracksuit", "id": "tracksuit"}) + "\n")
    ids = lexicon_build.known_ids([str(known)])
    patterns = [{"label": "CATEGORY", "pattern": "Track Suit", "id": "track_suit"},
                {"label": "CATEGORY", "pattern": "Track Pants", "id": "track_pants"}]
    assert [p["id"] for p in lexicon_build.reuse_ids(patterns, ids)] == ["tracksuit", "track_pants"]


def test_ids_from_applies_to_the_written_files(tmp_path):
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("id,brandName,articleType\n1,Zorbin,Track Suit\n")
    known = tmp_path / "curated.jsonl"
    known.write_text(json.dumps({"label": "CATEGORY", "pattern": "tracksuit", "id": "tracksuit"}) + "\n")
    out = tmp_path / "out"
    assert lexicon_build.main(["--catalog", str(catalog), "--out", str(out), "--ids-from", str(known)]) == 0
    written = [json.loads(line) for line in (out / "categories_catalog.jsonl").read_text().splitlines()]
    assert written == [{"label": "CATEGORY", "pattern": "Track Suit", "id": "tracksuit"}]

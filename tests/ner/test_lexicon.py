import json
import re

import pytest

from ner.lexicon import (DATA_DIR, LexiconError, canonical_id, expand_numbers, number_forms, phrase_key, plural,
                         read_lexicon, singular)


def test_canonical_id_joins_lower_case_words():
    assert canonical_id("Stainless Steel") == "stainless_steel"


@pytest.mark.parametrize("word,expected", [("sneaker", "sneakers"), ("dress", "dress"), ("watch", "watches"),
                                           ("accessory", "accessories"), ("knife", "knives"), ("jeans", "jeans")])
def test_plural(word, expected):
    assert plural(word) == expected


@pytest.mark.parametrize("word,expected", [("sneakers", "sneaker"), ("watches", "watch"), ("jeans", "jeans"),
                                           ("accessories", "accessory"), ("ties", "tie"), ("glass", "glass"), ("bus", "bus")])
def test_singular(word, expected):
    assert singular(word) == expected


def test_number_forms_change_only_the_last_word_and_keep_its_casing():
    assert number_forms("Track Pant") == ["Track Pant", "Track Pants"]


def test_garments_named_in_the_plural_also_match_in_the_singular():
    assert number_forms("briefs") == ["brief", "briefs"]
    assert number_forms("Track Pants") == ["Track Pant", "Track Pants"]


def test_plural_garment_whose_singular_is_another_word_keeps_one_form():
    assert number_forms("shorts") == ["shorts"]


def test_number_forms_inflect_the_part_after_a_hyphen():
    assert number_forms("t-shirt") == ["t-shirt", "t-shirts"]
    assert number_forms("Zip-Ties") == ["Zip-Tie", "Zip-Ties"]


def test_expand_numbers_keeps_the_id():
    out = expand_numbers([{"label": "CATEGORY", "pattern": "Sneakers", "id": "sneaker"}])
    assert [(p["pattern"], p["id"]) for p in out] == [("Sneaker", "sneaker"), ("Sneakers", "sneaker")]


def test_expand_numbers_leaves_other_labels_alone():
    out = expand_numbers([{"label": "BRAND", "pattern": "Crocs", "id": "crocs"}])
    assert [p["pattern"] for p in out] == ["Crocs"]


def test_plain_list_with_label_prefix(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("Seapesca\n\n# comment\nFish King\n")
    assert read_lexicon(f"BRAND={path}") == [
        {"label": "BRAND", "pattern": "Seapesca", "id": "seapesca"},
        {"label": "BRAND", "pattern": "Fish King", "id": "fish_king"},
    ]


def test_plain_list_label_from_file_name(tmp_path):
    path = tmp_path / "brands.txt"
    path.write_text("Acme\n")
    assert read_lexicon(path)[0]["label"] == "BRAND"


def test_plain_list_without_label_is_an_error(tmp_path):
    path = tmp_path / "things.txt"
    path.write_text("Acme\n")
    with pytest.raises(LexiconError, match="LABEL=path"):
        read_lexicon(path)


def test_jsonl_pattern_without_id_gets_one(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"label": "COLOR", "pattern": "Navy Blue"}) + "\n")
    assert read_lexicon(path) == [{"label": "COLOR", "pattern": "Navy Blue", "id": "navy_blue"}]


def test_jsonl_error_names_file_and_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"label": "COLOR", "pattern": "Red"}\n{oops\n')
    with pytest.raises(LexiconError, match=r"p.jsonl:2"):
        read_lexicon(path)


def test_missing_file_is_an_error():
    with pytest.raises(LexiconError, match="not found"):
        read_lexicon("no/such/lexicon.jsonl")


@pytest.mark.parametrize("a,b", [("Track Suit", "tracksuit"), ("track-suit", "Tracksuit"), ("Pond's", "Ponds"),
                                 ("Bamboo Fibre", "bamboo fiber"), ("Jewellery Set", "jewelry set")])
def test_phrase_key_is_shared_by_spellings(a, b):
    assert phrase_key(a) == phrase_key(b)


def test_phrase_key_keeps_full_stops():
    assert phrase_key("A.P.C.") != phrase_key("APC")


def test_bundled_lexicons_give_one_id_per_phrase():
    ids = {}
    for path in sorted(DATA_DIR.glob("en/**/*.jsonl")):
        for item in read_lexicon(path):
            if isinstance(item["pattern"], str):
                ids.setdefault((item["label"], phrase_key(item["pattern"])), set()).add(item["id"])
    assert {key: found for key, found in ids.items() if len(found) > 1} == {}


def test_plain_list_label_is_case_insensitive(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("Acme\n")
    assert read_lexicon(f"brand={path}") == [{"label": "BRAND", "pattern": "Acme", "id": "acme"}]


def test_plain_list_of_an_unknown_label_is_an_error(tmp_path, monkeypatch):
    path = tmp_path / "mine.txt"
    path.write_text("Acme\n")
    with pytest.raises(LexiconError, match=r"unknown label FOO; labels: BRAND, CATEGORY, MATERIAL, COLOR, NONE$"):
        read_lexicon(f"FOO={path}")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "brands=2024.txt").write_text("Acme\n")  # a file whose name holds '=' is still a path
    assert read_lexicon("brands=2024.txt")[0]["label"] == "BRAND"


def test_lexicon_directory_and_non_utf8_jsonl_are_named(tmp_path):
    with pytest.raises(LexiconError, match=f"lexicon file {tmp_path} is a directory"):
        read_lexicon(f"BRAND={tmp_path}")
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"label": "COLOR", "pattern": "Red"}\n\xff\n')
    with pytest.raises(LexiconError, match=r"p.jsonl:2: not UTF-8 \(at byte offset 0\)"):
        read_lexicon(path)


def test_a_pattern_line_names_a_known_label_in_any_case_or_a_word_of_its_own(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"label": "brand", "pattern": "Acme"}\n{"label": "Size_Band", "pattern": "XL"}\n')
    assert [item["label"] for item in read_lexicon(path)] == ["BRAND", "Size_Band"]
    for label in ("", 5, "BRAND NAME", None):
        lines = ['{"label": "COLOR", "pattern": "Red"}', json.dumps({"label": label, "pattern": "Acme"})]
        path.write_text("\n".join(lines) + "\n")
        with pytest.raises(LexiconError, match=rf"p.jsonl:2: 'label' must be a word of letters and _ .* not "
                                               rf"{re.escape(json.dumps(label))}$"):
            read_lexicon(path)


def test_a_token_pattern_spacy_refuses_is_one_line_naming_it(tmp_path):
    """An attribute spaCy's Matcher does not know: found only as the pipeline is built, named in one line."""
    import ner

    lexicon = tmp_path / "brands.jsonl"
    lexicon.write_text('{"label": "BRAND", "pattern": [{"FOO": 1}], "id": "foo"}\n')
    with pytest.raises(LexiconError) as refused:
        ner.load("en", [str(lexicon)])
    assert str(refused.value) == ("the BRAND pattern [{\"FOO\": 1}] (id 'foo') is not a token pattern spaCy takes: "
                                  "[pattern -> 0 -> FOO] Extra inputs are not permitted")

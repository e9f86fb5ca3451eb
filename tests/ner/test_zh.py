"""The zh configuration: character-level lexicon matching, offsets into the original title."""
import pytest


@pytest.fixture(scope="module")
def zh():
    import ner

    return ner.load("zh")


def labelled(ents):
    return [(e["label"], e["text"]) for e in ents]


def test_lexicon_phrases_match_between_characters(zh):
    [ents] = zh.extract(["耐克男子黑色纯棉T恤"])
    assert labelled(ents) == [("BRAND", "耐克"), ("COLOR", "黑色"), ("MATERIAL", "纯棉"), ("CATEGORY", "T恤")]


def test_longest_phrase_wins(zh):
    [ents] = zh.extract(["白色跑步鞋"])
    assert labelled(ents) == [("COLOR", "白色"), ("CATEGORY", "跑步鞋")]


def test_character_pattern_finds_percent_composition(zh):
    [ents] = zh.extract(["100%棉短裤"])
    assert labelled(ents) == [("MATERIAL", "100%棉"), ("CATEGORY", "短裤")]


def test_offsets_are_character_offsets_of_the_title(zh):
    title = "新款 李宁 运动鞋"
    [ents] = zh.extract([title])
    assert [(title[e["start"]:e["end"]], e["id"]) for e in ents] == [("李宁", "li_ning"), ("运动鞋", "sneakers")]


def test_brand_hint_works_without_casing(zh):
    [ents] = zh.extract(["某某牌羽绒服"], brand_hints=["某某"])
    assert labelled(ents)[0] == ("BRAND", "某某")


def test_latin_lexicon_entry_matches_whole_words_only(zh):
    assert labelled(zh.extract(["新款Nike跑鞋"])[0]) == [("BRAND", "Nike"), ("CATEGORY", "跑鞋")]
    assert labelled(zh.extract(["Nikes跑鞋"])[0]) == [("CATEGORY", "跑鞋")]


def test_numbers_stay_one_token_for_patterns(zh):
    title = "95%棉 5%氨纶 T恤"
    assert [t.text for t in zh.nlp(title)][:3] == ["95", "%", "棉"]
    assert labelled(zh.extract([title])[0])[:1] == [("MATERIAL", "95%棉")]

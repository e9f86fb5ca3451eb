"""The colour rules: a shade word with its colour, colours glued by "/" or "-" as one colour value, the colour field
of a "product, colour, size" title."""
import pytest

from ner.components.color_rules import SIZE_FIELD


def colors(doc):
    return [(e.text, e.id_) for e in doc.ents if e.label_ == "COLOR"]


def test_shade_word_joins_its_colour(color_nlp):
    assert colors(color_nlp("Zorbin Dark Red Shoes")) == [("Dark Red", "dark_red")]


def test_listed_shade_phrase_keeps_its_id(color_nlp):
    assert colors(color_nlp("Zorbin Light Blue Shoes")) == [("Light Blue", "light_blue")]


def test_word_that_is_no_shade_stays_out(color_nlp):
    assert colors(color_nlp("Zorbin Ice Red Shoes")) == [("Red", "red")]


def test_colours_glued_by_slash_are_one_colourway(color_nlp):
    assert colors(color_nlp("Oxford, Black/White, 12 D")) == [("Black/White", "black/white")]


def test_colourway_of_three_with_a_shade(color_nlp):
    assert colors(color_nlp("Mask Black/Dark Red/White")) == [("Black/Dark Red/White", "black/dark_red/white")]


def test_colours_apart_from_the_slash_stay_apart(color_nlp):
    assert colors(color_nlp("Mask Black / White")) == [("Black", "black"), ("White", "white")]


def test_plain_colour_stands_where_another_entity_takes_the_shade(color_nlp):
    doc = color_nlp("Mountain Light Red Bike")
    assert [(e.text, e.label_) for e in doc.ents] == [("Mountain Light", "BRAND"), ("Red", "COLOR")]


def test_colours_glued_by_hyphen_are_one_value(color_nlp):
    assert colors(color_nlp("Shoe White-Red")) == [("White-Red", "white/red")]


def test_shade_glued_by_hyphen_joins_its_colour(color_nlp):
    assert colors(color_nlp("Shoe Dark-Red")) == [("Dark-Red", "dark_red")]


def test_colour_glued_to_a_word_that_is_no_colour_stands_alone(color_nlp):
    assert colors(color_nlp("Shoe Black-Suede")) == [("Black", "black")]


def test_colour_field_of_a_variant_title_is_one_colour(color_nlp):
    assert colors(color_nlp("Zorbin Flat, Black Patent, 8 M US")) == [("Black Patent", "black_patent")]


def test_colour_field_without_a_known_colour_is_a_colour(color_nlp):
    assert colors(color_nlp("Zorbin Slip-On, Cognac, 10.5 M")) == [("Cognac", "cognac")]


def test_colour_field_ends_before_a_material(color_nlp):
    doc = color_nlp("Zorbin Loafer, Black Steel, 6 UK/8 M US")
    assert [(e.text, e.label_) for e in doc.ents] == [("Black", "COLOR"), ("Steel", "MATERIAL")]


def test_field_that_a_material_begins_is_no_colour(color_nlp):
    doc = color_nlp("Zorbin Bottle, Stainless Steel Cap, 8 M")
    assert [(e.text, e.label_) for e in doc.ents] == [("Stainless Steel", "MATERIAL")]


def test_field_before_a_count_is_no_colour_field(color_nlp):
    assert colors(color_nlp("Zorbin Brush, Black Patent, 2 Count")) == [("Black", "black")]


def test_field_before_a_last_field_that_is_no_size_stays_as_it_was(color_nlp):
    assert colors(color_nlp("Zorbin Brush, Cognac, Soft")) == []


def test_field_with_digits_is_no_colour_field(color_nlp):
    assert colors(color_nlp("Zorbin Flat, Black 2, 8 M US")) == [("Black", "black")]


def test_variant_field_rule_can_be_switched_off():
    from tests.ner.conftest import FIXTURES, title_nlp

    nlp = title_nlp()
    nlp.add_pipe("moon_lexicon_ruler", config={"lexicons": [str(FIXTURES / "colors.jsonl")]})
    nlp.add_pipe("moon_color_rules", config={"shades": str(FIXTURES / "shades.txt"), "variant_field": False})
    nlp.add_pipe("moon_entity_resolver", config={"sources": ["moon_lexicon"]})
    assert colors(nlp("Zorbin Flat, Black Patent, 8 M US")) == [("Black", "black")]


@pytest.mark.parametrize("field", ["8 M US", "10.5 D(M) US", "7.5 W", "13 4E US", "6 UK/8 M US", "0.5 M US Infant",
                                   "36 (US Women's 5.5-6)", "US 8", "5", "One Size", "3.5 M YTH"])
def test_shoe_and_clothing_sizes_are_size_fields(field):
    assert SIZE_FIELD.fullmatch(field)


@pytest.mark.parametrize("field", ["3 oz", "2 Pk", "2 Count", "12 OZ", "2 Pack", "16 Loads", "Pack of 6", "50 ml",
                                   "12 Count (Pack of 2)", "XL"])
def test_counts_and_quantities_are_no_size_fields(field):
    assert not SIZE_FIELD.fullmatch(field)

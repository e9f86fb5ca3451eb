"""The colour rules: a shade word with its colour, colours glued by "/" or "-" as one colour value."""


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

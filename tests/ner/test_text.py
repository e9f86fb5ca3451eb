from ner.text import clean_title, fold


def test_plain_ascii_title_is_kept_as_is():
    title = clean_title("Nike Men Black Shoes")
    assert title.text == "Nike Men Black Shoes"
    assert title.span(5, 8) == (5, 8)


def test_html_entity_is_decoded():
    assert clean_title("Women&#39;S Running Shorts").text == "Women'S Running Shorts"


def test_span_after_entity_maps_to_original_offsets():
    title = clean_title("Women&#39;S Running Shorts")
    start = title.text.index("Running")
    assert title.span(start, start + 7) == (12, 19)


def test_span_covering_entity_covers_whole_reference():
    title = clean_title("Men&amp;Women Shoes")
    assert title.text == "Men&Women Shoes"
    assert title.span(0, 9) == (0, 13)


def test_unknown_entity_name_stays_literal():
    assert clean_title("Men&Women Shoes").text == "Men&Women Shoes"


def test_control_characters_become_spaces():
    assert clean_title("Nike\x00Air\tMax").text == "Nike Air Max"


def test_typographic_apostrophe_is_folded():
    assert clean_title("Levi\u2019s Jeans").text == "Levi's Jeans"


def test_long_title_is_cut_to_max_chars():
    title = clean_title("x" * 100_000, max_chars=50)
    assert len(title.text) == 50
    assert len(title.original) == 100_000


def test_non_string_becomes_empty():
    assert clean_title(None).text == ""


def test_fold_ignores_case_punctuation_and_spacing():
    assert fold("Dr. Scholl's  Shoes") == fold("dr scholl s shoes")

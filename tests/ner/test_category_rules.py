"""The category rules: one category per title, compounds of overlapping matches, the head of the first phrase."""


def cats(doc):
    return [e.text for e in doc.ents if e.label_ == "CATEGORY"]


def test_one_category_per_title(category_nlp):
    assert cats(category_nlp("Binder Rings Folder")) == ["Folder"]


def test_overlapping_matches_make_one_compound(category_nlp):
    doc = category_nlp("Magnetic Wall File Pocket")
    assert cats(doc) == ["Wall File Pocket"]
    assert [e.id_ for e in doc.ents] == ["file_pocket"]


def test_head_of_first_phrase_wins(category_nlp):
    assert cats(category_nlp("Heavy Binder with Rings, Folder")) == ["Binder"]


def test_head_repeated_before_by_wins(category_nlp):
    assert cats(category_nlp("Green Tabs and Folder , 5/Pack Tabs by Avery AVE123")) == ["Tabs"]


def test_compound_extends_over_category_words_in_structured_titles(category_nlp):
    assert cats(category_nlp("recycled Interior File Folders, 1/3 Cut")) == ["Interior File Folders"]


def test_no_extension_over_stop_modifiers(category_nlp):
    assert cats(category_nlp("Pocket Pack File Folders, Legal")) == ["File Folders"]


def test_no_extension_without_web_shop_structure(category_nlp):
    assert cats(category_nlp("Hanes Men Bikini Briefs")) == ["Briefs"]


def test_chosen_category_beats_material_of_same_span(category_nlp):
    doc = category_nlp("smooth laser Paper , Ream")
    assert [(e.text, e.label_) for e in doc.ents] == [("Paper", "CATEGORY")]


def test_keyword_list_takes_most_repeated_head_as_plain_noun(category_nlp):
    assert cats(category_nlp("minnow Fishing Lure Hard Bait Treble Hook Fishing Lure")) == ["Lure"]


def test_product_word_a_shop_repeats_before_by_brand_is_the_category(category_nlp):
    doc = category_nlp("Shop Ticket Holders, Stitched, 25/BX Holders by Avery AVE46117 - OnTimeSupplies.com")
    assert cats(doc) == ["Shop Ticket Holders"]

"""The category rules: one category per title, compounds of overlapping matches, the head of the first phrase."""
import json

import pytest

from tests.ner.conftest import FIXTURES, title_nlp


def cats(doc):
    return [e.text for e in doc.ents if e.label_ == "CATEGORY"]


def cats_at(doc):
    return [(e.text, e.start_char) for e in doc.ents if e.label_ == "CATEGORY"]


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


def _nlp_with(**options):
    nlp = title_nlp()
    nlp.add_pipe("moon_lexicon_ruler", config={"lexicons": [str(FIXTURES / "categories.jsonl")]})
    nlp.add_pipe("moon_brand_rules", config={"lead_skip": str(FIXTURES / "lead.txt"),
                                             "stop_words": str(FIXTURES / "stop.txt")})
    nlp.add_pipe("moon_category_rules", config={"stop_modifiers": str(FIXTURES / "modifier_stop.txt"), **options})
    nlp.add_pipe("moon_entity_resolver", config={
        "sources": ["moon_hint", "moon_brand", "moon_category", "moon_lexicon", "moon_rules"]})
    return nlp


def test_one_word_category_takes_in_a_capitalised_modifier():
    nlp = _nlp_with(extend_capitalized=True)
    assert cats(nlp("Zorbin ZX-400 Lateral Cart, Gray")) == ["Lateral Cart"]


def test_capitalised_modifier_extension_takes_one_word():
    nlp = _nlp_with(extend_capitalized=True)
    assert cats(nlp("Zorbin ZX-400 Sturdy Lateral Cart, Gray")) == ["Lateral Cart"]


def test_no_capitalised_modifier_without_the_option():
    assert cats(_nlp_with()("Zorbin ZX-400 Lateral Cart, Gray")) == ["Cart"]


def test_no_capitalised_modifier_in_upper_case():
    nlp = _nlp_with(extend_capitalized=True)
    assert cats(nlp("Zorbin ZX-400 SAS Cart, Gray")) == ["Cart"]


def test_no_capitalised_modifier_before_a_compound():
    nlp = _nlp_with(extend_capitalized=True)
    assert cats(nlp("Zorbin ZX-400 Sturdy File Folder, Legal")) == ["File Folder"]


def test_no_capitalised_modifier_over_product_line_words():
    nlp = _nlp_with(extend_capitalized=True)
    assert cats(nlp("Zorbin ZX-400 Series Cart, Gray")) == ["Cart"]


def test_capitalised_modifier_glued_by_hyphen_is_one_word():
    nlp = _nlp_with(extend_capitalized=True, glued_words=True)
    doc = nlp("Zorbin ZX-400 Extra-Wide Cart, Gray")
    assert [(e.text, e.label_) for e in doc.ents if e.label_ == "CATEGORY"] == [("Extra-Wide Cart", "CATEGORY")]


def test_word_before_a_null_placeholder_is_the_category():
    nlp = _nlp_with(phrase_head="missing")
    assert cats(nlp("77-X12 Zorbin 4-Port Gizmo Null")) == ["Gizmo"]


def test_word_a_shop_repeats_after_the_first_phrase_is_the_category():
    nlp = _nlp_with(phrase_head="missing")
    assert cats(nlp("77-X12 Zorbin 64GB Gizmo, Retail 77-X12 Gizmo Wholesale")) == ["Gizmo"]


def test_unrepeated_last_word_of_the_first_phrase_is_no_category():
    nlp = _nlp_with(phrase_head="missing")
    assert cats(nlp("77-X12 Zorbin 64GB Gizmo, Retail Wholesale")) == []


def test_upper_case_code_before_null_is_no_category():
    nlp = _nlp_with(phrase_head="missing")
    assert cats(nlp("77-X12 Zorbin 64GB SAS Null")) == []


def test_shop_product_word_outranks_a_lexicon_category_when_always():
    nlp = _nlp_with(phrase_head="always")
    assert cats(nlp("77-X12 Zorbin Paper Gizmo, Retail 77-X12 Gizmo Wholesale")) == ["Gizmo"]


def test_lexicon_category_stands_when_phrase_head_is_missing_only():
    nlp = _nlp_with(phrase_head="missing")
    assert cats(nlp("77-X12 Zorbin Paper Gizmo, Retail 77-X12 Gizmo Wholesale")) == ["Paper"]


def test_keyword_list_leaves_the_material_reading_of_a_repeated_head_to_the_material(category_nlp):
    doc = category_nlp("glossy Papers nice Binder bright Paper glossy")
    assert [(e.text, e.label_) for e in doc.ents] == [("Papers", "CATEGORY"), ("Paper", "MATERIAL")]


def test_product_word_after_a_later_mention_of_the_brand_is_the_category(category_nlp):
    assert cats(category_nlp("Zandor Quelby ZQ-100 Gizmo Gray Zandor Gizmo, 2/Pack")) == ["Gizmo"]


def test_word_after_a_describing_hyphen_is_no_product_word(category_nlp):
    assert cats(category_nlp("Zandor Classic Low-tops, Interior Folder Blue")) == ["Interior Folder"]


def test_word_after_a_single_letter_hyphen_stays_a_product_word(category_nlp):
    assert cats(category_nlp("Zandor Classic X-Tops, Interior Folder Blue")) == ["Tops"]


def test_word_before_a_describing_hyphen_is_no_product_word(category_nlp):
    assert cats(category_nlp("Zandor Folder Tie-dye, Blue")) == ["Folder"]


def test_word_before_a_code_after_a_hyphen_stays_a_product_word(category_nlp):
    assert cats(category_nlp("Zandor Folder Cart-ZC100, Blue")) == ["Folder Cart"]


def test_word_that_ranks_the_product_is_no_product_word(category_nlp):
    assert cats(category_nlp("Zandor Folder Top Quality Blue")) == ["Folder"]


def test_rank_word_alone_leaves_the_only_product_word(category_nlp):
    assert cats(category_nlp("Zandor Blue Top Quality")) == ["Top"]


def test_department_word_gives_way_to_the_product(category_nlp):
    assert cats(category_nlp("Zandor Fishing Lure 12cm Fishing Tackle")) == ["Fishing Lure"]


def test_department_word_alone_is_the_category(category_nlp):
    assert cats(category_nlp("Zandor 12cm Fishing Tackle")) == ["Fishing Tackle"]


def test_immediately_repeated_head_is_no_second_compound():
    nlp = _nlp_with(extend_capitalized=True)
    assert cats(nlp("Zandor Dining Cart Cart - Zandor | Shop")) == ["Dining Cart"]


def test_mention_that_is_also_a_material_leaves_the_category_to_another_mention(category_nlp):
    doc = category_nlp("nice Papers bright Paper")
    assert [(e.text, e.label_) for e in doc.ents] == [("Papers", "CATEGORY"), ("Paper", "MATERIAL")]


def test_packaging_word_before_a_null_placeholder_is_the_category():
    nlp = _nlp_with(phrase_head="missing")
    assert cats(nlp("77-X12 Zorbin G4 Mounting Kit Null")) == ["Kit"]


def test_container_after_a_quantity_is_no_category(category_nlp):
    assert cats(category_nlp("Zandor Floor Cleaner 32 oz Bottle, Lemon")) == ["Cleaner"]


def test_container_alone_stays_the_category(category_nlp):
    assert cats(category_nlp("Zandor Squeeze Bottle 32 oz")) == ["Bottle"]


def test_later_mention_of_the_brand_is_no_category():
    nlp = _nlp_with()
    doc = nlp("Tops Slip Book, Shop Tops Book")
    assert [(e.text, e.label_) for e in doc.ents] == [("Tops", "BRAND")]


def test_product_word_that_ends_the_brand_is_the_category_when_nothing_else_is():
    doc = _nlp_with()("Happy Socks Unisex Red Socks")
    assert [(e.text, e.label_, e.start_char) for e in doc.ents] == [("Happy Socks", "BRAND", 0),
                                                                     ("Socks", "CATEGORY", 23)]


def test_long_keyword_list_takes_the_first_mention_of_the_repeated_head():
    nlp = _nlp_with(long_list_words=12)
    doc = nlp("minnow Lure deep diving Hard Bait with treble Hook sinking slow pike Fishing Lure big")
    assert cats_at(doc) == [("Lure", 7)]


def test_long_keyword_list_without_a_repeated_head_takes_the_first_compound():
    nlp = _nlp_with(long_list_words=12)
    assert cats(nlp("deep diving minnow Lure floating Hard Bait sharp treble Hook pike bass trout sea")) == ["Lure"]


def test_first_compound_of_a_long_list_modifies_the_compound_right_after_it():
    nlp = _nlp_with(long_list_words=12)
    doc = nlp("deep diving Binder Folder floating Hard Bait sharp treble Hook pike bass trout")
    assert cats_at(doc) == [("Folder", 19)]


def test_plural_first_compound_of_a_long_list_modifies_nothing():
    nlp = _nlp_with(long_list_words=12)
    doc = nlp("deep diving Rings Folder floating Hard Bait sharp treble Hook pike bass trout")
    assert cats_at(doc) == [("Rings", 12)]


def test_short_keyword_list_keeps_the_last_compound():
    nlp = _nlp_with(long_list_words=12)
    assert cats(nlp("minnow Lure floating Hard Bait sharp Hook")) == ["Hook"]


def test_long_keyword_list_keeps_the_last_mention_without_the_option():
    doc = _nlp_with()("minnow Lure deep diving Hard Bait with treble Hook sinking slow pike Fishing Lure big")
    assert cats_at(doc) == [("Lure", 77)]


def test_function_word_of_a_category_phrase_extends_no_compound(category_nlp):
    assert cats(category_nlp("Avery 12 bills of Interior File Folders, 1/3 Cut")) == ["Interior File Folders"]


def test_colour_word_inside_a_category_phrase_is_no_colour(category_nlp):
    doc = category_nlp("Lipton Green Tea Folder")
    assert [(e.text, e.label_) for e in doc.ents if e.label_ != "BRAND"] == [("Folder", "CATEGORY")]


def test_colour_word_before_a_category_stays_a_colour(category_nlp):
    doc = category_nlp("Lipton Green Folder")
    assert [(e.text, e.label_) for e in doc.ents if e.label_ != "BRAND"] == [("Green", "COLOR"), ("Folder", "CATEGORY")]


def _department_lexicons(tmp_path):
    """A category lexicon with "sleeping bag" and "bag", and three department lexicons of which "bag" ends
    phrases in all three and "lure" in one: (lexicon path, department paths)."""
    def write(name, phrases):
        path = tmp_path / name
        path.write_text("".join(json.dumps({"label": "CATEGORY", "pattern": p, "id": p.replace(" ", "_")}) + "\n"
                                for p in phrases))
        return str(path)

    lexicon = write("categories.jsonl", ["sleeping bag", "bag", "fishing lure", "lure", "tent"])
    paths = [write("sports.jsonl", ["sleeping bag", "fishing lure"]), write("home.jsonl", ["trash bag"]),
             write("office.jsonl", ["document bag", "bag"])]
    return lexicon, paths


def _department_nlp(tmp_path, departments):
    """Category rules over `_department_lexicons`, a head word ambiguous in `departments` of them."""
    lexicon, paths = _department_lexicons(tmp_path)
    nlp = title_nlp()
    nlp.add_pipe("moon_lexicon_ruler", config={"lexicons": [lexicon]})
    nlp.add_pipe("moon_category_rules", config={"department_lexicons": paths,
                                                "ambiguous_departments": departments})
    nlp.add_pipe("moon_entity_resolver", config={"sources": ["moon_category", "moon_lexicon"]})
    return nlp


def test_ambiguous_heads_are_words_ending_phrases_of_enough_departments(tmp_path):
    from ner.components.category_rules import ambiguous_heads

    _, paths = _department_lexicons(tmp_path)
    assert ambiguous_heads(paths, "CATEGORY", 3) == {"bag"}
    assert ambiguous_heads(paths, "CATEGORY", 2) == {"bag"}
    assert ambiguous_heads(paths, "CATEGORY", 1) == {"bag", "lure"}


def test_ambiguous_departments_below_one_is_refused(tmp_path):
    with pytest.raises(ValueError, match="ambiguous_departments"):
        _department_nlp(tmp_path, 0)


def test_keyword_list_keeps_the_compound_of_an_ambiguous_head(tmp_path):
    nlp = _department_nlp(tmp_path, 3)
    assert cats(nlp("Down Sleeping Bag Winter Tent Camping Sleeping Bag")) == ["Sleeping Bag"]


def test_keyword_list_takes_the_plain_noun_of_a_head_of_too_few_departments(tmp_path):
    nlp = _department_nlp(tmp_path, 4)
    assert cats(nlp("Down Sleeping Bag Winter Tent Camping Sleeping Bag")) == ["Bag"]


def test_keyword_list_takes_the_plain_noun_of_an_unambiguous_head(tmp_path):
    nlp = _department_nlp(tmp_path, 3)
    assert cats(nlp("Hard Fishing Lure Winter Tent Pike Fishing Lure")) == ["Lure"]

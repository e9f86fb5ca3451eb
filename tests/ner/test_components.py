"""Each rule component on a small fixture lexicon: exact spans and labels."""
from ner.components import groups
from tests.ner.conftest import title_nlp


def ents(doc):
    return [(e.text, e.label_) for e in doc.ents]


def test_phrase_matches_case_insensitively_with_canonical_id(small_nlp):
    doc = small_nlp("palm tree Girls Skirt")
    assert ents(doc) == [("palm tree", "BRAND")]
    assert doc.ents[0].id_ == "palm_tree"


def test_category_matches_in_other_number(small_nlp):
    doc = small_nlp("running Sneakers")
    assert ents(doc) == [("Sneakers", "CATEGORY")]
    assert doc.ents[0].id_ == "sneaker"


def test_longer_material_beats_its_part(small_nlp):
    assert ents(small_nlp("knife stainless steel")) == [("stainless steel", "MATERIAL")]


def test_longer_color_beats_its_part(small_nlp):
    assert ents(small_nlp("Acme Navy Blue Track Pants")) == [
        ("Acme", "BRAND"), ("Navy Blue", "COLOR"), ("Track Pants", "CATEGORY")]


def test_brand_lexicon_beats_color_inside_brand(small_nlp):
    assert ents(small_nlp("Red Tape Shoes")) == [("Red Tape", "BRAND")]


def test_label_priority_breaks_ties_of_equal_length(small_nlp):
    assert ents(small_nlp("Acme Jersey")) == [("Acme", "BRAND"), ("Jersey", "MATERIAL")]


def test_token_pattern_finds_percent_composition(small_nlp):
    assert ents(small_nlp("tee 100% Cotton")) == [("100% Cotton", "MATERIAL")]


def test_brand_word_ending_a_material_phrase_is_no_brand(small_nlp):
    assert ents(small_nlp("100% Silk Scarf")) == [("100% Silk", "MATERIAL")]


def test_brand_word_standing_alone_at_brand_position_is_brand(small_nlp):
    assert ents(small_nlp("Silk Men Scarf")) == [("Silk", "BRAND")]


def test_brand_hint_found_in_title_is_brand(small_nlp):
    doc = small_nlp.make_doc("new Zorro Men Shoes")
    doc.user_data["moon_brand_hint"] = "zorro"
    doc = small_nlp(doc)
    assert ents(doc) == [("Zorro", "BRAND")]


def test_brand_hint_must_align_with_tokens(small_nlp):
    doc = small_nlp.make_doc("Pumas Shoes")
    doc.user_data["moon_brand_hint"] = "Puma"
    assert groups.get(small_nlp(doc), groups.HINT) == []


def test_unknown_brand_is_leading_capitalised_run(small_nlp):
    assert ents(small_nlp("Holy Land Market Men Sandals")) == [("Holy Land Market", "BRAND")]


def test_unknown_brand_skips_lead_words(small_nlp):
    assert ents(small_nlp("New SEAPESCA lure")) == [("SEAPESCA", "BRAND")]


def test_unknown_brand_stops_at_stop_word(small_nlp):
    assert ents(small_nlp("Finn Comfort Women Sandals")) == [("Finn Comfort", "BRAND")]


def test_unknown_brand_stops_at_lexicon_color(small_nlp):
    assert ents(small_nlp("Zorro Blue Shoes")) == [("Zorro", "BRAND"), ("Blue", "COLOR")]


def test_lexicon_brand_inside_leading_run_stretches_it(small_nlp):
    assert ents(small_nlp("Acme Palm Tree Skirt")) == [("Acme Palm Tree", "BRAND")]


def test_lexicon_brand_at_brand_position_is_kept_as_listed(small_nlp):
    assert ents(small_nlp("Original Palm Tree Zorro Skirt")) == [("Palm Tree", "BRAND")]


def test_lexicon_brand_elsewhere_stands_when_distinctive(small_nlp):
    assert ents(small_nlp("skirt for girls from Palm Tree")) == [("Palm Tree", "BRAND")]


def test_brand_after_by_beats_guess_from_position(small_nlp):
    assert ents(small_nlp("Heavy Binder, 4 inch by Avery AVE21011")) == [("Avery", "BRAND")]


def test_guessed_brand_stops_at_product_code(small_nlp):
    assert ents(small_nlp("Zorblax LC10EBK ink")) == [("Zorblax", "BRAND")]


def test_brand_repeated_later_in_title_is_the_repeated_word(small_nlp):
    assert ents(small_nlp("Smead Plain Folder x Smead Guides")) == [("Smead", "BRAND")]


def test_title_case_common_word_is_no_brand(small_nlp):
    assert ents(small_nlp("Cotton shirts for summer")) == []


def test_common_word_before_audience_word_is_a_brand(small_nlp):
    assert ents(small_nlp("Diesel Men's Sneaker")) == [("Diesel", "BRAND"), ("Sneaker", "CATEGORY")]


def test_capitals_run_stops_at_first_word_not_in_capitals(small_nlp):
    assert ents(small_nlp("FISH KING Ice Rod")) == [("FISH KING", "BRAND")]


def test_lower_case_start_gives_no_brand(small_nlp):
    assert ents(small_nlp("running shoes")) == []


def test_title_tokenizer_splits_comma_before_digit(small_nlp):
    assert [t.text for t in small_nlp.make_doc("Navy,4 M")] == ["Navy", ",", "4", "M"]


def test_specific_material_kept_before_generic_one():
    nlp = title_nlp()
    nlp.add_pipe("moon_lexicon_ruler", config={"lexicons": []}).add_patterns([
        {"label": "MATERIAL", "pattern": "cloth", "id": "cloth"},
        {"label": "MATERIAL", "pattern": "cotton", "id": "cotton"}])
    resolver = nlp.add_pipe("moon_entity_resolver", config={"one_per_title": {"MATERIAL": "first"}})
    resolver.generic = {"MATERIAL": {"cloth"}}
    assert ents(nlp("cloth face mask , cotton")) == [("cotton", "MATERIAL")]
    resolver.generic = {}
    assert ents(nlp("cloth face mask , cotton")) == [("cloth", "MATERIAL")]


def test_material_of_phrased_title_is_the_last_one_of_keyword_list_the_first():
    nlp = title_nlp()
    nlp.add_pipe("moon_lexicon_ruler", config={"lexicons": []}).add_patterns([
        {"label": "MATERIAL", "pattern": "lace", "id": "lace"},
        {"label": "MATERIAL", "pattern": "leather", "id": "leather"}])
    nlp.add_pipe("moon_entity_resolver", config={"one_per_title": {"MATERIAL": "phrases_last"}})
    assert ents(nlp("sport lace up oxford, wheat leather, 5 M")) == [("leather", "MATERIAL")]
    assert ents(nlp("sport lace up oxford wheat leather 5 M")) == [("lace", "MATERIAL")]


def _lace_nlp(resolver_config):
    nlp = title_nlp()
    nlp.add_pipe("moon_lexicon_ruler", config={"lexicons": []}).add_patterns([
        {"label": "MATERIAL", "pattern": "lace", "id": "lace"},
        {"label": "NONE", "pattern": "lace up", "id": "lace_up"},
        {"label": "NOT_ENTITY", "pattern": "lace trim", "id": "lace_trim"}])
    nlp.add_pipe("moon_entity_resolver", config=resolver_config)
    return nlp


def test_silent_phrase_blocks_the_entity_inside_it_and_is_none_itself():
    nlp = _lace_nlp({})
    assert ents(nlp("black lace up dance shoes")) == []
    assert ents(nlp("floral lace dress")) == [("lace", "MATERIAL")]
    assert ents(nlp("lace up lace dress")) == [("lace", "MATERIAL")]


def test_silent_labels_come_from_the_config():
    nlp = _lace_nlp({"silent_labels": ["NOT_ENTITY"]})
    assert ents(nlp("cotton dress with lace trim")) == []
    assert ents(nlp("black lace up dance shoes")) == [("lace up", "NONE")]


def test_descriptor_files_are_read_word_by_word(tmp_path, fixtures):
    words = tmp_path / "describing.txt"
    words.write_text("# use and properties\nportable vintage folding\n", encoding="utf-8")
    common = tmp_path / "common.txt"
    common.write_text("portable\nvintage\n", encoding="utf-8")
    nlp = title_nlp()
    nlp.add_pipe("moon_lexicon_ruler", config={"lexicons": [str(fixtures / "patterns.jsonl")]})
    nlp.add_pipe("moon_brand_rules", config={"scorer": "rules", "common_words": str(common),
                                             "descriptor_words": [str(words)]})
    nlp.add_pipe("moon_entity_resolver")
    assert ents(nlp("Folding Sneaker")) == [("Sneaker", "CATEGORY")]
    assert ents(nlp("Zorblax Sneaker")) == [("Zorblax", "BRAND"), ("Sneaker", "CATEGORY")]


def _resolved(title, found, stops):
    from ner.components.resolver import EntityResolver

    doc = title_nlp().make_doc(title)
    for group, cands in found.items():
        groups.put(doc, group, cands)
    return ents(EntityResolver(sources=[groups.HINT, groups.LEXICON], label_priority=["BRAND"], stops=stops)(doc))


def test_stop_list_drops_a_lexicon_candidate():
    assert _resolved("AND Women Dress", {groups.LEXICON: [(0, 1, "BRAND", "and")]}, {"BRAND": {"and"}}) == []


def test_stop_list_leaves_the_rows_own_brand():
    assert _resolved("AND Women Dress", {groups.HINT: [(0, 1, "BRAND", "and")]}, {"BRAND": {"and"}}) == [
        ("AND", "BRAND")]

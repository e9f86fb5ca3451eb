"""BRAND candidates of a title: the brand position, the lengths of the leading run, lexicon and "by" spans."""
import pytest

from ner.brand_candidates import (BY, LEAD, LEX, NONE, Candidate, TitleView, abbreviation_tail, brand_position,
                                  candidates, describing_start, is_code, lead_ends, legal_name, lexicon_inside,
                                  lone_common_word, product_words, recurring_lead, recurring_prefix)

LEAD_SKIP = {"new", "original", "2018"}
STOP = {"men", "women", "'s", "pack"}


def view(text, blocked=None, lex=(), common=("pack",), descriptors=()):
    tokens = text.split(" ")
    texts, spaces = [], []
    for tok in tokens:
        parts = tok.split("\x00") if "\x00" in tok else [tok]
        for k, part in enumerate(parts):
            texts.append(part)
            spaces.append(k == len(parts) - 1)
    blocked = blocked or {}
    return TitleView(texts, spaces, [blocked.get(i) for i in range(len(texts))], list(lex), LEAD_SKIP, set(common),
                     descriptors=frozenset(descriptors))


def spans(v, **kw):
    return [(v.span_text(c.start, c.end), c.kind) for c in candidates(v, STOP, **kw)]


def test_brand_position_skips_lead_words_numbers_and_codes():
    assert brand_position(view("New 2018 ABC1234 Seapesca Lure"), LEAD_SKIP) == 3


def test_brand_position_skips_leading_quantity():
    assert brand_position(view("4 Boxes of Kimbo Espresso"), LEAD_SKIP) == 3


def test_brand_position_skips_a_hyphenated_part_number_that_starts_with_digits():
    assert brand_position(view("400\x00-\x00AJOU Zorbin Drive"), LEAD_SKIP) == 3


def test_brand_position_keeps_a_lexicon_brand_inside_a_part_number():
    assert brand_position(view("400\x00-\x00Zorbin Drive", lex=[(2, 3)]), LEAD_SKIP) == 2


def test_brand_position_skips_a_unit_glued_to_a_number():
    assert brand_position(view("20\x00g Steel Tip Darts"), LEAD_SKIP) == 2


def test_brand_position_skips_a_number_with_its_unit_in_one_token():
    assert brand_position(view("5L Zorbin Water Bottle"), LEAD_SKIP) == 1
    assert brand_position(view("3x Zorbin Widget"), LEAD_SKIP) == 1


def test_brand_position_skips_a_frequency_after_a_number():
    assert brand_position(view("2.4\x00GHz Zorbin Wireless Mouse"), LEAD_SKIP) == 2


def test_brand_position_skips_a_unit_after_a_free_standing_number():
    assert brand_position(view("500 ml Zorbin Shampoo"), LEAD_SKIP) == 2


def test_brand_position_keeps_a_brand_that_looks_like_a_quantity():
    assert brand_position(view("3\x00M Post-it Notes"), LEAD_SKIP) == 1


def test_leading_run_gives_one_candidate_per_length():
    assert spans(view("Holy Land Market Sandals"), max_words=3) == [
        ("", NONE), ("Holy", LEAD), ("Holy Land", LEAD), ("Holy Land Market", LEAD)]


def test_leading_run_stops_at_stop_word_and_comma():
    assert spans(view("Finn Comfort Women Sandals")) == [("", NONE), ("Finn", LEAD), ("Finn Comfort", LEAD)]
    assert spans(view("Nature Valley \x00, Granola")) == [("", NONE), ("Nature", LEAD), ("Nature Valley", LEAD)]


def test_glued_possessive_and_inner_marks_stay_inside():
    v = view("Trader Joe\x00's Coffee")
    assert ("Trader Joe's", LEAD) in spans(v)
    v = view("Oral\x00-\x00B Toothbrush")
    assert spans(v, max_words=2) == [("", NONE), ("Oral-B", LEAD)]


def test_blocked_word_starts_no_guessed_brand():
    assert spans(view("Black Shorts", blocked={0: "COLOR"})) == [("", NONE)]


def test_category_word_ends_the_leading_run():
    assert spans(view("Toread Gloves Winter", blocked={1: "CATEGORY"})) == [("", NONE), ("Toread", LEAD)]


def test_lower_case_ordinary_word_starts_no_guessed_brand():
    assert spans(view("cheap Nike shoes", lex=[(1, 2)], common=("cheap",))) == [("", NONE), ("Nike", LEX)]


def test_lexicon_brand_of_ordinary_words_elsewhere_is_no_candidate():
    v = view("Zorbin LED Light Mountain Road Lights", lex=[(2, 4)], common=("light", "mountain"))
    assert ("Light Mountain", LEX) not in spans(v)


def test_lexicon_brand_with_an_initialism_elsewhere_is_a_candidate():
    v = view("Zorbin Bike Light ACE Mountain Road", lex=[(3, 5)], common=("ace", "mountain"))
    assert ("ACE Mountain", LEX) in spans(v)


def test_lexicon_brand_elsewhere_and_after_by_are_candidates():
    v = view("Tape , by Scotch MMM600121296 from Acme", lex=[(6, 7)])
    assert spans(v) == [("", NONE), ("Tape", LEAD), ("Acme", LEX), ("Scotch", BY)]


def test_codes_and_ordinals():
    assert is_code("MMM600121296") and is_code("B21") and is_code("LC10EBK")
    assert not is_code("3M") and not is_code("21st") and not is_code("X5")


def test_candidate_is_a_named_tuple():
    assert Candidate(0, 1, LEAD).end == 1


def test_by_brand_before_part_number_is_the_attribution():
    from ner.brand_candidates import attribution
    v = view("Transparent Tape , 1 \x00\" Core by Scotch MMM600121296 - OnTimeSupplies.com")
    c = attribution(v, STOP)
    assert (v.span_text(c.start, c.end), c.kind) == ("Scotch", BY)


def test_by_brand_before_a_parenthesis_is_the_attribution():
    from ner.brand_candidates import attribution
    v = view("Green Tea Powder , Cafe Blend by Zorbin Sweet Leaf ( 16 oz )")
    c = attribution(v, STOP)
    assert (v.span_text(c.start, c.end), c.kind) == ("Zorbin Sweet Leaf", BY)


def test_attribution_keeps_the_article_of_the_name():
    from ner.brand_candidates import attribution
    v = view("Bamboo Toothbrush by The Zorbin Co. ( 5pk )", blocked={1: "CATEGORY"}, common=("the",))
    c = attribution(v, STOP | {"the"})
    assert (v.span_text(c.start, c.end), c.kind) == ("The Zorbin Co.", BY)


def test_hyphenated_brand_ending_in_a_product_word_is_the_attribution():
    from ner.brand_candidates import attribution
    v = view("Index Tabs , White by Redi\x00-\x00Tag RTG31001 - OnTimeSupplies.com",
             blocked={1: "CATEGORY", 7: "CATEGORY"})
    c = attribution(v, STOP)
    assert (v.span_text(c.start, c.end), c.kind) == ("Redi-Tag", BY)


def test_product_word_glued_to_a_letter_ends_the_brand():
    assert lead_ends(view("Zorbin T\x00-\x00Shirts Long", blocked={1: "CATEGORY", 3: "CATEGORY"}), 0, 3) == [1]


def test_an_initial_is_no_brand_end():
    assert lead_ends(view("A. Jaffe Art Deco"), 0, 3) == [2, 3]


def test_roman_numeral_of_a_model_ends_a_lead_brand():
    assert lead_ends(view("ZORBIN PANTHER II Fishing Rod"), 0, 3) == [1, 2]


def test_letter_v_may_go_on_with_a_lead_brand():
    assert lead_ends(view("Zorbin V Guitar"), 0, 2) == [1, 2]


def test_lower_case_word_ends_a_capitalised_lead_brand():
    assert lead_ends(view("Zorbin mtb cycling Shoes"), 0, 3, lower_ends=True) == [1]


def test_lower_case_word_may_go_on_outside_the_lead():
    assert lead_ends(view("Zorbin mtb cycling Shoes"), 0, 3) == [1, 2, 3]


def test_lower_case_lead_brand_goes_on_in_lower_case():
    assert lead_ends(view("fan wu fang Dance Shoes"), 0, 3, lower_ends=True) == [1, 2, 3]


def test_lead_candidates_stop_at_a_lower_case_word():
    assert spans(view("Zorbin winter thicken Jacket")) == [("", NONE), ("Zorbin", LEAD)]


def test_describing_word_ends_a_lead_brand():
    assert lead_ends(view("Zorbin Outdoor Gloves", descriptors=("outdoor",)), 0, 3, lower_ends=True) == [1]


def test_describing_word_in_capitals_goes_on_with_a_lead_brand():
    assert lead_ends(view("ZORBIN YOGA Tops", descriptors=("yoga",)), 0, 3, lower_ends=True) == [1, 2, 3]


def test_by_brand_before_gender_word_is_no_attribution():
    from ner.brand_candidates import attribution
    assert attribution(view("Gentle Souls by Kenneth Cole Women Sandals"), STOP) is None


def test_brand_between_dash_and_shop_bar_is_the_attribution():
    from ner.brand_candidates import attribution
    v = view("Lismore Red Brandy , Pair - Royal Doulton | US")
    c = attribution(v, STOP)
    assert v.span_text(c.start, c.end) == "Royal Doulton"


def test_lead_word_repeated_later_is_a_brand():
    from ner.brand_candidates import recurring_lead
    v = view("Universal Six Section Folder Universal Folder Green")
    c = recurring_lead(v, STOP)
    assert (c.start, c.end) == (0, 1)
    assert recurring_lead(view("Universal Six Section Folder Green"), STOP) is None


def test_brand_cut_to_the_words_the_shop_repeats():
    v = view("Tacori Petite Crescent HT2546 Shop Tacori HT2546 Rings")
    c = recurring_prefix(v, Candidate(0, 2, LEAD))
    assert (c.start, c.end) == (0, 1)
    v = view("Ice Maker Co Ice Maker Co Cube")
    assert recurring_prefix(v, Candidate(0, 3, LEAD)) == Candidate(0, 3, LEAD)


def test_two_word_lead_noise_is_skipped_only_as_a_pair():
    skip = {"free shipping", "new"}
    assert brand_position(view("Free Shipping Seapesca Lure"), skip) == 2
    assert brand_position(view("Free Knight Backpack"), skip) == 0


def test_brand_not_cut_when_its_second_word_is_a_name():
    v = view("Zandor Quelby ZQ-100 Work Bench Zandor Bench")
    assert recurring_prefix(v, Candidate(0, 2, LEAD)) == Candidate(0, 2, LEAD)


def test_brand_cut_when_its_second_word_is_an_ordinary_word():
    v = view("Zandor Pack Work Bench Zandor Bench")
    assert recurring_prefix(v, Candidate(0, 2, LEAD)) == Candidate(0, 1, LEAD)


def test_brand_not_cut_when_its_repeated_first_word_is_an_ordinary_word():
    v = view("Quality Pack Envelopes Kraft Quality Envelopes", common=("pack", "quality"))
    assert recurring_prefix(v, Candidate(0, 2, LEAD)) == Candidate(0, 2, LEAD)


def test_brand_of_an_ordinary_first_word_still_cut_after_shop():
    v = view("Quality Pack Envelopes Shop Quality Envelopes", common=("pack", "quality"))
    assert recurring_prefix(v, Candidate(0, 2, LEAD)) == Candidate(0, 1, LEAD)


def test_brand_cut_after_shop_even_before_a_name():
    v = view("Zandor Quelby ZQ-100 Shop Zandor ZQ-100 Rings")
    assert recurring_prefix(v, Candidate(0, 2, LEAD)) == Candidate(0, 1, LEAD)


def test_brand_not_cut_inside_a_hyphenated_name():
    v = view("Zan\x00-\x00O\x00-\x00Matic ZQ-100 Mixer Zan Mixer")
    assert recurring_prefix(v, Candidate(0, 5, LEAD)) == Candidate(0, 5, LEAD)


def test_brand_not_cut_before_a_company_word():
    texts = "Zandor Products Work Bench Zandor Bench".split()
    v = TitleView(texts, [True] * len(texts), [None] * len(texts), [], LEAD_SKIP, {"products"})
    assert recurring_prefix(v, Candidate(0, 2, LEAD)) == Candidate(0, 2, LEAD)


def test_lone_ordinary_word_is_no_guessed_brand():
    assert lone_common_word(view("Warm Ski Jacket", common=("warm",)), Candidate(0, 1, LEAD))


def test_lone_ordinary_word_in_upper_case_may_be_a_brand():
    assert not lone_common_word(view("TBH Kids Conditioner", common=("tbh",)), Candidate(0, 1, LEAD))


def test_lone_ordinary_word_a_shop_offer_repeats_may_be_a_brand():
    assert not lone_common_word(view("Quality Envelopes , 10 Quality Envelopes", common=("quality",)),
                                Candidate(0, 1, LEAD))


def test_lone_ordinary_word_a_keyword_list_repeats_is_no_brand():
    assert lone_common_word(view("Warm Ski Jacket Women Winter Jacket Warm Coat", common=("warm",)),
                            Candidate(0, 1, LEAD))


def test_offer_is_a_title_in_phrases():
    assert view("Clear Tape , 6/Pack").is_offer()
    assert view("Clear Tape by Scotch").is_offer()
    assert view("Clear Tape - MMM600").is_offer()
    assert not view("Clear Tape\x00-\x00Roll Scotch Tape").is_offer()


def test_lone_describing_word_is_no_brand_though_repeated():
    assert lone_common_word(view("Cycling Glasses UV400 Cycling Eyewear", common=("cycling",),
                                 descriptors=("cycling",)), Candidate(0, 1, LEAD))


def test_lone_describing_word_need_not_be_an_ordinary_word():
    assert lone_common_word(view("Autumn Woolen Caps", descriptors=("autumn",)), Candidate(0, 1, LEAD))


def test_lone_describing_word_in_capitals_may_be_a_brand():
    assert not lone_common_word(view("AUTUMN Woolen Caps", descriptors=("autumn",)), Candidate(0, 1, LEAD))


def test_lone_describing_word_a_lexicon_knows_is_a_brand():
    assert not lone_common_word(view("Universal Folder Universal Tabs", common=("universal",), lex=[(0, 1)],
                                     descriptors=("universal",)), Candidate(0, 1, LEAD))


def test_lone_ordinary_word_a_lexicon_knows_is_a_brand():
    assert not lone_common_word(view("Wink Coffee Beans", common=("wink",), lex=[(0, 1)]), Candidate(0, 1, LEAD))


def test_ordinary_word_and_material_only_describe_the_product():
    assert product_words(view("Soft Leather Wallet", blocked={1: "MATERIAL"}, common=("soft",)),
                         Candidate(0, 2, LEAD))


def test_rare_word_before_material_may_be_a_brand():
    assert not product_words(view("Zorblax Leather Wallet", blocked={1: "MATERIAL"}), Candidate(0, 2, LEAD))


def test_ordinary_words_without_a_lexicon_word_are_left_to_the_scorer():
    assert not product_words(view("Laughing Man Coffee", common=("laughing", "man")), Candidate(0, 2, LEAD))


def test_product_words_the_title_repeats_may_be_a_brand():
    assert not product_words(view("Fire Maple Stove Fire Maple", blocked={1: "MATERIAL", 4: "MATERIAL"},
                                  common=("fire",)), Candidate(0, 2, LEAD))


def test_ordinary_word_and_describing_word_only_describe_the_product():
    assert product_words(view("Outdoor Survival Whistle", common=("outdoor", "survival"), descriptors=("outdoor",)),
                         Candidate(0, 2, LEAD))


def test_describing_word_need_not_be_an_ordinary_word():
    assert product_words(view("Crossfit Workout Band", common=("workout",), descriptors=("crossfit",)),
                         Candidate(0, 2, LEAD))


def test_rare_word_after_describing_word_may_be_a_brand():
    assert not product_words(view("Outdoor Zorblax Whistle", common=("outdoor",), descriptors=("outdoor",)),
                             Candidate(0, 2, LEAD))


def test_words_up_to_a_legal_form_are_the_brand():
    v = view("Clean Coffee Co Whole Bean Coffee", blocked={1: "CATEGORY"})
    assert legal_name(v, STOP) == Candidate(0, 3, LEAD)


def test_legal_form_with_its_period_belongs_to_the_brand():
    v = view("Detroit Grooming Co\x00. - Beard Butter")
    assert v.span_text(*legal_name(v, STOP)[:2]) == "Detroit Grooming Co."


def test_legal_form_glued_to_a_word_is_no_legal_form():
    assert legal_name(view("Aussie Miracle Curls Co\x00-\x00wash"), STOP) is None


def test_legal_form_alone_at_the_brand_position_is_left_to_the_scorer():
    assert legal_name(view("Inc 5 Women Heels"), STOP) is None


def test_name_and_company_word_are_the_brand():
    v = view("Zandor Industries Index Card File ZQ-100")
    assert legal_name(v, STOP) == Candidate(0, 2, LEAD)


def test_name_and_trade_word_of_a_maker_are_the_brand():
    v = view("Zandor Nutrition Biotin Liquid Drops, 60 ml")
    assert legal_name(v, STOP) == Candidate(0, 2, LEAD)


def test_ordinary_word_and_company_word_are_no_company_name():
    assert legal_name(view("Cleaning Products Starter Kit", common=("cleaning",)), STOP) is None


def test_legal_name_stops_at_lower_case_word():
    assert legal_name(view("Acme shoes Co"), STOP) is None


def test_guessed_brand_never_ends_inside_a_hyphenated_name():
    v = view("Bunn\x00-\x00O\x00-\x00Matic Tea Dispenser")
    assert [t for t, kind in spans(v) if kind == LEAD] == ["Bunn-O-Matic", "Bunn-O-Matic Tea", "Bunn-O-Matic Tea Dispenser"]


def test_lexicon_brand_that_is_part_of_a_hyphenated_name_is_no_candidate():
    v = view("Bunn\x00-\x00O\x00-\x00Matic Tea Dispenser", lex=[(0, 1)])
    assert ("Bunn", LEX) not in spans(v) and ("Bunn", LEAD) not in spans(v)


def test_brand_glued_to_its_model_code_stays_a_candidate():
    v = view("BRS\x00-\x00H22 Gas Stove", lex=[(0, 1)])
    assert ("BRS", LEX) in spans(v)


def test_recurring_lead_is_the_whole_hyphenated_name():
    v = view("Ice\x00-\x00O\x00-\x00Matic ICE0606FT Ice Maker Ice\x00-\x00O\x00-\x00Matic Maker")
    assert recurring_lead(v, STOP) == Candidate(0, 5, LEAD)


def test_brand_cut_to_the_lexicon_brand_before_abbreviations():
    v = view("HP AC Power Cord", lex=[(0, 1)])
    assert abbreviation_tail(v, Candidate(0, 2, LEAD)) == Candidate(0, 1, LEAD)


def test_brand_cut_to_the_lexicon_brand_before_several_abbreviations():
    v = view("NIKE NSW JKT WVN Jacket", lex=[(0, 1)])
    assert abbreviation_tail(v, Candidate(0, 4, LEAD)) == Candidate(0, 1, LEAD)


@pytest.mark.parametrize("title,lex", [
    ("Zandor Quelby Work Bench", [(0, 1)]),  # a word, not an abbreviation
    ("ASICS KAYANO Shoes", [(0, 1)]),  # a capital word longer than three letters
    ("Zandor ZQ Mixer", [(0, 2), (0, 1)]),  # the guess is itself a longer lexicon brand
    ("Zandor ZQ Mixer", []),  # no lexicon brand to cut to
])
def test_brand_not_cut_to_a_lexicon_brand(title, lex):
    assert abbreviation_tail(view(title, lex=lex), Candidate(0, 2, LEAD)) == Candidate(0, 2, LEAD)


def test_guess_that_starts_with_a_describing_word_is_flagged():
    v = view("Outdoor MOLLE Medical Kit", descriptors=("outdoor",))
    assert describing_start(v, Candidate(0, 2, LEAD))


def test_describing_word_in_capitals_may_start_a_brand():
    v = view("OUTDOOR MOLLE Medical Kit", descriptors=("outdoor",))
    assert not describing_start(v, Candidate(0, 2, LEAD))


def test_lexicon_brand_that_starts_with_a_describing_word_is_not_flagged():
    v = view("Classic Polo Men Shirt", descriptors=("classic",), lex=[(0, 2)])
    assert not describing_start(v, Candidate(0, 2, LEAD))


def test_lexicon_brand_inside_a_describing_guess():
    v = view("Remanufactured Zorbin UG-5540 Toner", descriptors=("remanufactured",), lex=[(1, 2)])
    assert lexicon_inside(v, Candidate(0, 2, LEAD)) == Candidate(1, 2, LEX)
    assert lexicon_inside(view("Outdoor MOLLE Kit"), Candidate(0, 2, LEAD)) is None

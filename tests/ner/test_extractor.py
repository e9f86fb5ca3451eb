"""The extractor's contract: entity dicts with offsets into the ORIGINAL title, and no crash on any string."""
import pytest


def texts_of(extractor, title, label):
    """The texts of one label among the entities of one title."""
    [ents] = extractor.extract([title])
    return [e["text"] for e in ents if e["label"] == label]


def test_entity_dicts_carry_label_text_offsets_and_id(extractor):
    [ents] = extractor.extract(["Nike Men Navy Blue Track Pants"])
    assert ents == [
        {"label": "BRAND", "text": "Nike", "start": 0, "end": 4, "id": "nike"},
        {"label": "COLOR", "text": "Navy Blue", "start": 9, "end": 18, "id": "navy"},
        {"label": "CATEGORY", "text": "Track Pants", "start": 19, "end": 30, "id": "track_pants"},
    ]


def test_offsets_point_into_original_title_after_html_entity(extractor):
    title = "Nike Women&#39;s Black Shorts"
    [ents] = extractor.extract([title])
    assert [(e["label"], title[e["start"]:e["end"]]) for e in ents] == [
        ("BRAND", "Nike"), ("COLOR", "Black"), ("CATEGORY", "Shorts")]


def test_brand_hint_makes_unknown_brand_a_brand(extractor):
    [ents] = extractor.extract(["Zorblax Men Black Shorts"], brand_hints=["zorblax"])
    assert ents[0] == {"label": "BRAND", "text": "Zorblax", "start": 0, "end": 7, "id": "zorblax"}


def test_brand_hints_must_match_titles_in_length(extractor):
    with pytest.raises(ValueError, match="brand_hints"):
        extractor.extract(["a", "b"], brand_hints=["x"])


def test_results_keep_title_order(extractor):
    out = extractor.extract(["Black Shorts", "", "Red Shorts"])
    assert [[e["text"] for e in ents if e["label"] == "COLOR"] for ents in out] == [["Black"], [], ["Red"]]


@pytest.mark.parametrize("title", [
    "", " ", "\x00\x01\x1f", "😀👟🔥 Nike 👟", "حذاء رياضي نايك أسود", "耐克男士黑色跑步鞋", "&#0;&#xD800;&bogus;&",
    "x" * 100_000, "Nike " * 20_000, "\u202eRTL override\u202c", "a\u0301\u0301\u0301", "&amp;" * 500,
])
def test_never_crashes_on_odd_strings(extractor, title):
    [ents] = extractor.extract([title])
    for e in ents:
        assert title[e["start"]:e["end"]] == e["text"]


def test_non_string_titles_give_no_entities(extractor):
    assert extractor.extract([None, 12]) == [[], []]


def _nlp_with(component_name, factory):
    """Blank English with the title tokenizer, the bundled resolver and one extra component before it."""
    from spacy.language import Language

    from tests.ner.conftest import title_nlp

    if not Language.has_factory(component_name):
        Language.factory(component_name)(factory)
    nlp = title_nlp()
    nlp.add_pipe(component_name)
    nlp.add_pipe("moon_entity_resolver")
    return nlp


class _Fails:
    """Marks the token 'Acme' as a BRAND and raises on titles that contain 'BOOM'."""

    def __call__(self, doc):
        from ner.components import groups

        if "BOOM" in doc.text:
            raise RuntimeError("boom")
        groups.put(doc, groups.LEXICON, [(i, i + 1, "BRAND", "acme") for i, t in enumerate(doc) if t.text == "Acme"])
        return doc


def test_title_that_breaks_a_component_loses_only_its_own_entities(caplog):
    from ner.extractor import EntityExtractor

    nlp = _nlp_with("test_fails_on_boom", lambda nlp, name: _Fails())
    out = EntityExtractor(nlp, batch_size=4).extract(["Acme Shorts", "Acme BOOM Shorts", "Shorts by Acme"])
    assert [[(e["label"], e["text"], e["start"]) for e in ents] for ents in out] == [
        [("BRAND", "Acme", 0)], [], [("BRAND", "Acme", 10)]]
    assert "no entities for it" in caplog.text


class _Batched(_Fails):
    """The same component with its own `pipe`, which the extractor must use for a whole batch."""

    batches = 0

    def pipe(self, docs):
        type(self).batches += 1
        return [self(doc) for doc in docs]


def test_component_with_its_own_pipe_gets_whole_batches():
    from ner.extractor import EntityExtractor

    nlp = _nlp_with("test_batched_component", lambda nlp, name: _Batched())
    out = EntityExtractor(nlp, batch_size=2).extract(["Acme Shorts", "Red Acme", "Acme"])
    assert [[e["text"] for e in ents] for ents in out] == [["Acme"], ["Acme"], ["Acme"]]
    assert _Batched.batches == 2


def test_load_is_cached_per_process():
    import ner

    assert ner.load("en") is ner.load("en")


def test_load_takes_one_lexicon_file_or_none(tmp_path):
    import ner

    brands = tmp_path / "brands.jsonl"
    brands.write_text('{"label": "BRAND", "pattern": "Qwertyx Labs", "id": "qwertyx"}\n')
    [ents] = ner.load("en", lexicon_files=brands).extract(["Qwertyx Labs USB Cable"])
    assert [(e["label"], e["text"], e["id"]) for e in ents if e["label"] == "BRAND"] == [
        ("BRAND", "Qwertyx Labs", "qwertyx")]
    assert ner.load("en", lexicon_files=None) is ner.load("en")


@pytest.fixture(scope="module")
def maker_and_line(tmp_path_factory):
    """The bundled pipeline with a lexicon that knows a maker and one of its product lines."""
    import ner

    brands = tmp_path_factory.mktemp("lexicon") / "brands.jsonl"
    brands.write_text('{"label": "BRAND", "pattern": "Zorblax", "id": "zorblax"}\n'
                      '{"label": "BRAND", "pattern": "Zorblax Ultra 3", "id": "zorblax_ultra_3"}\n')
    return ner.load("en", lexicon_files=brands)


def test_product_line_a_lexicon_knows_is_the_brand(maker_and_line):
    [ents] = maker_and_line.extract(["Zorblax Ultra 3 Plaque Control Electric Toothbrush, White"])
    assert [(e["text"], e["start"], e["end"], e["id"]) for e in ents if e["label"] == "BRAND"] == [
        ("Zorblax Ultra 3", 0, 15, "zorblax_ultra_3")]


def test_maker_stands_where_the_title_does_not_name_the_line(maker_and_line):
    [ents] = maker_and_line.extract(["Zorblax Plaque Control Electric Toothbrush Ultra 3"])
    assert [(e["text"], e["id"]) for e in ents if e["label"] == "BRAND"] == [("Zorblax", "zorblax")]


def test_carbon_fiber_is_the_material_carbon(extractor):
    ents = extractor.extract(["Ultralight Carbon Fiber Trekking Pole 3 Sections"])[0]
    assert [(e["text"], e["start"], e["end"]) for e in ents if e["label"] == "MATERIAL"] == [("Carbon", 11, 17)]


def test_lower_case_product_word_is_no_part_of_the_brand(extractor):
    [ents] = extractor.extract(["Adidas shoes"])
    assert [(e["label"], e["text"]) for e in ents] == [("BRAND", "Adidas"), ("CATEGORY", "shoes")]


def test_selling_words_are_no_part_of_a_category(extractor):
    title = "HP 152728-001 40/80-GB DLT8000 Ext LVD, Null LVD Wholesale HP Price 152728-001"
    assert texts_of(extractor, title, "CATEGORY") == []


def test_quantity_at_the_start_is_no_brand(extractor):
    [ents] = extractor.extract(["20g Steel Tip Darts"])
    assert [(e["label"], e["text"]) for e in ents] == [("MATERIAL", "Steel"), ("CATEGORY", "Darts")]


@pytest.mark.parametrize("title,label,text", [
    ("Disposable Face Masks Non-Woven 3 Ply", "MATERIAL", "Non-Woven"),
    ("Face Masks, Non Woven Thick 3-Layers", "MATERIAL", "Non Woven"),
    ("Nemco 6311-1-240 Electric Hotplate w/ (2) Burners", "CATEGORY", "Hotplate"),
    ("Pacon Bus Stickers 800 Stickers, 6/Pack", "CATEGORY", "Stickers"),
    ("100% Mulberry Silk Face Mask with Filter Pocket", "MATERIAL", "100% Mulberry Silk"),
    ("Nike Men Pack of 2 Navy Blue T-Shirts", "CATEGORY", "T-Shirts"),
    ("Peter England Men Solid Grey Trouser", "CATEGORY", "Trouser"),
    ("Puma Men's Foundation Grey Polo T-shirt", "CATEGORY", "T-shirt"),
    ("Gatsby Men Blaze Deo", "CATEGORY", "Deo"),
])
def test_curated_phrase_is_one_entity_of_its_label(extractor, title, label, text):
    assert texts_of(extractor, title, label) == [text]


@pytest.mark.parametrize("title,canonical", [
    ("Nemco Electric Hot Plate, 2 Burners", "hotplate"),
    ("Duke Stainless Worktable, 60 x 30", "work_table"),
])
def test_spellings_of_a_category_share_its_canonical_id(extractor, title, canonical):
    [ents] = extractor.extract([title])
    assert [e["id"] for e in ents if e["label"] == "CATEGORY"] == [canonical]


def test_high_carbon_steel_is_one_material(extractor):
    [ents] = extractor.extract(["100pcs High Carbon Steel Fishing Hook Barbed"])
    assert [(e["text"], e["id"]) for e in ents if e["label"] == "MATERIAL"] == [
        ("High Carbon Steel", "high_carbon_steel")]


def test_leading_words_of_use_and_season_are_no_brand(extractor):
    assert texts_of(extractor, "Winter Warm Women Loafers Comfortable Flexible Fur Shoes", "BRAND") == []


def test_season_word_that_begins_a_brand_keeps_it(extractor):
    assert texts_of(extractor, "Spring Court Men's B1 Organic Canvas Sneaker, Blue", "BRAND") == ["Spring Court"]


def test_leading_country_and_style_words_are_no_brand(extractor):
    assert texts_of(extractor, "Korean Style Man Polyester Elastic Waist Long Pants For Running", "BRAND") == []


def test_leading_pattern_words_are_no_brand(extractor):
    assert texts_of(extractor, "Army Camouflage Baseball Cap tactical cap men women adjustable", "BRAND") == []


def test_leading_property_word_with_a_prefix_is_no_brand(extractor):
    assert texts_of(extractor, "Anti-slip Unisex Skiing Eyewear Double Layer Lens Goggles", "BRAND") == []


@pytest.mark.parametrize("title", ["Polarized Cycling Glasses Road Bike Sunglasses Eyewear",
                                   "Handmade Braided Horse Whips Flogger For Horse Racing"])
def test_leading_property_word_is_no_brand(extractor, title):
    assert texts_of(extractor, title, "BRAND") == []


def test_free_begins_a_brand_but_free_shipping_is_lead_noise(extractor):
    assert texts_of(extractor, "Free Knight 40L Climbing Rucksack Waterproof Hiking Backpack", "BRAND") == [
        "Free Knight"]
    assert texts_of(extractor, "Free Shipping Qwertyx Mens Running Shoes", "BRAND") == ["Qwertyx"]


def test_letter_glued_to_a_later_brand_mention_is_no_product_word(extractor):
    title = "3M Filtrete Replacement Filter 3M Filter 9 1/2 x 7 1/4 - MMMOAC100RF ReStockIt"
    assert texts_of(extractor, title, "CATEGORY") == ["Filter"]


def test_catalogue_brand_that_is_a_stop_word_needs_a_gender_word_after_it(extractor):
    assert texts_of(extractor, "AND Women Solid Black Tops", "BRAND") == ["AND"]
    assert texts_of(extractor, "Black and White Dress for Women", "BRAND") == []


def test_rows_own_brand_stands_even_when_it_is_a_stop_word(extractor):
    [ents] = extractor.extract(["Pieces Black Canvas Belt"], brand_hints=["Pieces"])
    assert [(e["label"], e["text"]) for e in ents if e["label"] == "BRAND"] == [("BRAND", "Pieces")]


def test_placeholder_title_has_no_entity(extractor):
    assert extractor.extract(["NA"]) == [[]]


def test_lexicon_brand_that_begins_with_a_nationality_stands(extractor):
    assert texts_of(extractor, "French Connection Women Black Sling Bag", "BRAND") == ["French Connection"]


def test_company_name_with_its_legal_form_is_the_brand(extractor):
    assert texts_of(extractor, "Clean Coffee Co Whole Bean Coffee, Medium Dark Roast", "BRAND") == ["Clean Coffee Co"]


def test_company_name_a_lexicon_knows_keeps_its_canonical_id(tmp_path):
    import ner

    brands = tmp_path / "brands.txt"
    brands.write_text("Zorblax Coffee Company\n", encoding="utf-8")
    [ents] = ner.load("en", lexicon_files=[f"BRAND={brands}"]).extract(["Zorblax Coffee Company Dark Roast Beans"])
    assert [(e["text"], e["id"]) for e in ents if e["label"] == "BRAND"] == [
        ("Zorblax Coffee Company", "zorblax_coffee_company")]


def test_colour_left_open_is_one_colour_value(extractor):
    [ents] = extractor.extract(["Sensodyne Precision Soft Toothbrush, (Colors May Vary)"])
    assert [(e["text"], e["id"]) for e in ents if e["label"] == "COLOR"] == [("Colors May Vary", "assorted")]


def test_colour_field_of_a_bundled_variant_title(extractor):
    [ents] = extractor.extract(["Crocs Women's Jayna Ballet Flat,Nautical Navy,4 M US"])
    assert [(e["text"], e["start"], e["id"]) for e in ents if e["label"] == "COLOR"] == [
        ("Nautical Navy", 32, "nautical_navy")]


@pytest.mark.parametrize("title", ["Women Lace Up Leather Ankle Boots", "Women Lace-up Leather Ankle Boots"])
def test_lace_up_is_how_a_shoe_closes_not_its_material(extractor, title):
    assert texts_of(extractor, title, "MATERIAL") == ["Leather"]


def test_lace_stays_a_material_elsewhere(extractor):
    assert texts_of(extractor, "Women Floral Lace Midi Dress", "MATERIAL") == ["Lace"]


@pytest.mark.parametrize("title, material", [
    ("Golf Clubs Fairway Wood Golf Clubs Graphite Shaft", "Graphite"),
    ("Golf Clubs 8PCS Iron Set Golf Clubs Steel Shaft", "Steel"),
])
def test_golf_clubs_named_after_a_material_are_no_material(extractor, title, material):
    # the category is "Golf Clubs"; the club names are no category here, and no material either
    assert texts_of(extractor, title, "MATERIAL") == [material]


def test_loading_the_pipeline_does_not_load_torch_and_torch_still_loads_after():
    """The rule pipeline has no use for torch (ner.pipeline.import_spacy): a process that only extracts entities
    does not pay for loading it, and one that needs torch later still gets it."""
    import subprocess
    import sys

    script = (
        "import sys, ner\n"
        "extractor = ner.load('en')\n"
        "print('torch' in sys.modules)\n"
        "print(extractor.extract(['Nike Men Black Shorts'])[0][0]['id'])\n"
        "import torch\n"
        "print(int(torch.ones(3).sum()))\n"
        "import thinc.compat\n"
        "print(thinc.compat.has_torch)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["False", "nike", "3", "False"]


def test_a_thread_importing_torch_while_spacy_loads_gets_it():
    """The hook that keeps torch from thinc refuses it to the importing thread only."""
    import threading

    from ner.pipeline import _HideTorch

    hook = _HideTorch(threading.get_ident())
    assert hook.find_spec("numpy") is None
    with pytest.raises(ImportError):
        hook.find_spec("torch.nn")
    seen = []
    other = threading.Thread(target=lambda: seen.append(hook.find_spec("torch")))
    other.start()
    other.join()
    assert seen == [None]  # another thread is left to the normal import system


def test_a_long_run_of_marks_is_cut_for_the_tokenizer_and_offsets_stay_true(extractor):
    """spaCy strips a run of '!' or emoji one character at a time, rescanning the rest: 2,000 of them took a second
    per title. The cleaned copy breaks such runs with spaces, keeping every offset."""
    from ner.text import clean_title

    for tail in ("!" * 1900, "\u2605" * 1900, "\U0001f525" * 1900):  # within the 2,000 characters read
        title = "Nike Men Black Shoes " + tail + " Red"
        cleaned = clean_title(title)
        assert len(cleaned.text) == len(title) and cleaned.text.startswith("Nike Men Black Shoes " + tail[:4] + " ")
        [ents] = extractor.extract([title])
        assert [(e["label"], e["text"]) for e in ents][:2] == [("BRAND", "Nike"), ("COLOR", "Black")]
        assert all(title[e["start"]:e["end"]] == e["text"] for e in ents)
    assert clean_title("Nike... Shoes (2-pack) ****").text == "Nike... Shoes (2-pack) ****"  # short runs stay


@pytest.mark.parametrize("title", ["حذاء رياضي Nike أسود", "נעלי ספורט נייקי שחור", "耐克 男士 黑色 运动鞋 Nike Air Max",
                                   "ナイキ メンズ スニーカー 黒", "나이키 남성 운동화 블랙"])
def test_words_without_case_are_never_guessed_as_a_brand(extractor, title):
    """Capitals are how the English pipeline guesses an unknown brand; letters with no case never show them, and the
    whole title came out as one BRAND. The English pipeline finds fewer entities in other scripts, never wrong ones."""
    [ents] = extractor.extract([title])
    assert not [e for e in ents if e["label"] == "BRAND" and any(ch > "\u02ff" for ch in e["text"])]


def test_a_brand_written_in_latin_letters_before_words_without_case_is_found(extractor):
    [ents] = extractor.extract(["Zorblax 男士 黑色 运动鞋"])
    assert [(e["label"], e["text"]) for e in ents if e["label"] == "BRAND"] == [("BRAND", "Zorblax")]

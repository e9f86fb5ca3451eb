"""The ner stage on real titles: columns, the catalogue-brand hint, learned brands from the run's artifact."""

from augment.config import stage_options
from augment.stages import resolve
from augment.stages.base import RunContext
from augment.stages.ner.spacy_rules import NerOptions, NerStage


def run(stage, titles, brands=None):
    batch = {"product_id": [str(i) for i in range(len(titles))], "title": titles,
             "catalog_brand": brands if brands is not None else [None] * len(titles)}
    return stage.process(batch)


def test_registry_resolves_spacy_rules_backend():
    assert resolve("ner", "spacy_rules") is NerStage


def test_options_are_validated_from_config():
    options = stage_options(NerStage, {"lang": "en", "lexicons": ["BRAND=x.txt"], "learn_brands": False}, "k")
    assert options == NerOptions(lang="en", lexicons=["BRAND=x.txt"], learn_brands=False)


def test_writes_one_value_per_row_for_each_column():
    result = run(NerStage(), ["Nike Men Black Shorts", ""])
    assert sorted(result.columns) == sorted(NerStage.writes)
    assert all(len(v) == 2 for v in result.columns.values())
    assert result.rejects is None


def test_columns_hold_entity_texts_by_label():
    result = run(NerStage(), ["Nike Men Black Cotton Shorts"])
    assert (result.columns["brand"], result.columns["category"], result.columns["material"],
            result.columns["color"]) == ([["Nike"]], [["Shorts"]], [["Cotton"]], [["Black"]])


def test_catalog_brand_comes_first_even_when_absent_from_title():
    result = run(NerStage(), ["Nike Men Black Shorts"], brands=["Nike Inc"])
    assert result.columns["brand"] == [["Nike Inc", "Nike"]]


def test_catalog_brand_found_in_title_is_not_repeated():
    result = run(NerStage(), ["Zorblax Men Black Shorts"], brands=["ZORBLAX"])
    assert result.columns["brand"] == [["ZORBLAX"]]
    assert result.columns["entities"][0][0]["text"] == "Zorblax"


def test_empty_catalog_brand_is_ignored():
    result = run(NerStage(), ["Nike Men Black Shorts"], brands=["  "])
    assert result.columns["brand"] == [["Nike"]]


def test_learned_brands_join_the_lexicon(tmp_path):
    learned = tmp_path / "brands.txt"
    learned.write_text("Quorvix Trail\n")
    stage = NerStage(context=RunContext(artifacts={"learned_brands": str(learned)}))
    stage.setup()
    result = run(stage, ["Mens Quorvix Trail Black Shorts"])
    assert result.columns["brand"] == [["Quorvix Trail"]]


def test_learned_brands_of_a_lexicon_file_are_read_as_written(tmp_path):
    """The planner writes learned brands as JSON lines: a brand that starts with `#` is no comment there."""
    learned = tmp_path / "learned_brands.jsonl"
    learned.write_text('{"label": "BRAND", "pattern": "#Quorvix"}\n')
    stage = NerStage(context=RunContext(artifacts={"learned_brands": str(learned)}))
    assert stage.lexicon_files() == [str(learned)]
    result = run(stage, ["Mens #Quorvix Black Shorts"])
    assert result.columns["brand"] == [["#Quorvix"]]


def test_learned_brands_are_ignored_when_learning_is_off(tmp_path):
    learned = tmp_path / "brands.txt"
    learned.write_text("Quorvix Trail\n")
    stage = NerStage(NerOptions(learn_brands=False), RunContext(artifacts={"learned_brands": str(learned)}))
    assert stage.lexicon_files() == []


def test_extra_lexicon_option(tmp_path):
    extra = tmp_path / "materials.txt"
    extra.write_text("Zylonite\n")
    stage = NerStage(NerOptions(lexicons=[f"MATERIAL={extra}"]))
    result = run(stage, ["running shoe zylonite upper"])
    assert result.columns["material"] == [["zylonite"]]


def test_init_is_cheap_and_loads_nothing():
    assert NerStage().extractor is None


def test_batch_context_pauses_the_cyclic_garbage_collector_and_restores_it():
    import gc

    assert gc.isenabled()
    with NerStage().batch_context():
        assert not gc.isenabled()
    assert gc.isenabled()

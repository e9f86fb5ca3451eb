from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def extractor():
    """The bundled English pipeline, built once for the test session."""
    import ner

    return ner.load("en")


def title_nlp():
    """Blank English with the title tokenizer, the NER components registered."""
    import spacy

    import ner.components  # noqa: F401

    return spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "moon.title_tokenizer.v1"}}})


@pytest.fixture()
def small_nlp():
    """A blank English pipeline with the title tokenizer and the rule components on the fixture lexicon."""
    nlp = title_nlp()
    nlp.add_pipe("moon_brand_hint")
    nlp.add_pipe("moon_lexicon_ruler", config={"lexicons": [str(FIXTURES / "patterns.jsonl")]})
    nlp.add_pipe("moon_brand_rules", config={"lead_skip": str(FIXTURES / "lead.txt"),
                                             "stop_words": str(FIXTURES / "stop.txt")})
    nlp.add_pipe("moon_entity_resolver")
    return nlp


@pytest.fixture()
def category_nlp():
    """Blank English with the title tokenizer, the fixture lexicon, brand rules and the category rules."""
    nlp = title_nlp()
    nlp.add_pipe("moon_lexicon_ruler", config={"lexicons": [str(FIXTURES / "categories.jsonl")]})
    nlp.add_pipe("moon_brand_rules", config={"lead_skip": str(FIXTURES / "lead.txt"),
                                             "stop_words": str(FIXTURES / "stop.txt")})
    nlp.add_pipe("moon_category_rules", config={"stop_modifiers": str(FIXTURES / "modifier_stop.txt")})
    nlp.add_pipe("moon_entity_resolver", config={
        "sources": ["moon_hint", "moon_brand", "moon_category", "moon_lexicon", "moon_rules"]})
    return nlp


@pytest.fixture()
def color_nlp():
    """Blank English with the title tokenizer, the colour fixture lexicon, the colour rules and the resolver."""
    nlp = title_nlp()
    nlp.add_pipe("moon_lexicon_ruler", config={"lexicons": [str(FIXTURES / "colors.jsonl"),
                                                            str(FIXTURES / "patterns.jsonl")]})
    nlp.add_pipe("moon_color_rules", config={"shades": str(FIXTURES / "shades.txt")})
    nlp.add_pipe("moon_entity_resolver", config={"sources": ["moon_lexicon"]})
    return nlp

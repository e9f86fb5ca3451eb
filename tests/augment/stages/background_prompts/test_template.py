"""The template background_prompts backend: ten distinct, category-aware descriptions per product, seeded."""
import dataclasses

import pytest

from augment.stages.background_prompts import guards
from augment.stages import resolve
from augment.stages.background_prompts.template import TemplateBackgroundOptions, TemplateBackgroundPrompts
from augment.stages.base import RunContext
from prompts import backgrounds as background_sets

SHOES = "Nike Men Running Shoes"
SHOES_ENTITIES = [
    {"label": "BRAND", "text": "Nike", "start": 0, "end": 4, "id": "nike"},
    {"label": "CATEGORY", "text": "Running Shoes", "start": 9, "end": 22, "id": "shoes"},
]


def run(titles, entities, options=None, context=None):
    stage = TemplateBackgroundPrompts(options, context or RunContext())
    stage.setup()
    batch = {"product_id": [f"p{i}" for i in range(len(titles))], "title": titles, "entities": entities}
    return stage.process(batch).columns["background_prompts"]


def test_registered_under_background_prompts_template():
    assert resolve("background_prompts", "template") is TemplateBackgroundPrompts


def test_ten_distinct_guarded_prompts_per_product():
    (prompts,) = run([SHOES], [SHOES_ENTITIES])
    assert len(prompts) == 10
    assert guards.check_background_prompts(prompts, 10) is None


def test_category_group_gives_most_prompts():
    bset = background_sets.load()
    (prompts,) = run([SHOES], [SHOES_ENTITIES])
    assert sum(p in bset.groups["footwear"] for p in prompts) == 7
    assert sum(p in bset.generic for p in prompts) == 3


def test_category_found_in_title_without_entities():
    bset = background_sets.load()
    (prompts,) = run(["Lavie Women Brown Handbag"], [[]])
    assert sum(p in bset.groups["bags"] for p in prompts) == 7


def test_unknown_category_uses_generic_set():
    bset = background_sets.load()
    (prompts,) = run(["Mystery Object 42"], [[]])
    assert all(p in bset.generic for p in prompts)


def test_keyword_is_a_whole_word():
    bset = background_sets.load()
    # "top" (apparel) must not match inside "laptop"; "laptop" is electronics.
    assert bset.group_of([], "Dell Laptop Sleeve Grey") == "electronics"


def test_same_product_same_prompts():
    first = run([SHOES, SHOES], [SHOES_ENTITIES, SHOES_ENTITIES])
    again = run([SHOES, SHOES], [SHOES_ENTITIES, SHOES_ENTITIES])
    assert first == again
    assert first[0] != first[1]  # product ids differ (p0, p1): different draws


def test_config_hash_changes_the_draw():
    a = run([SHOES], [SHOES_ENTITIES], context=RunContext(config_hash="a" * 16))
    b = run([SHOES], [SHOES_ENTITIES], context=RunContext(config_hash="b" * 16))
    assert a != b


def test_count_option():
    (prompts,) = run([SHOES], [SHOES_ENTITIES], TemplateBackgroundOptions(count=3))
    assert len(prompts) == 3 and len(set(prompts)) == 3


def test_count_beyond_generic_set_is_an_error():
    with pytest.raises(ValueError, match="between 1 and 14"):
        TemplateBackgroundPrompts(TemplateBackgroundOptions(count=15), RunContext())


def test_unknown_set_is_an_error():
    with pytest.raises(KeyError, match="backgrounds.v1"):
        TemplateBackgroundPrompts(TemplateBackgroundOptions(backgrounds="backgrounds.v9"), RunContext())


def test_every_curated_prompt_passes_the_guard():
    bset = background_sets.load()
    for text in [p for group in bset.groups.values() for p in group] + list(bset.generic):
        assert guards.check_background_prompt(text) is None, text


def test_options_are_a_frozen_dataclass():
    assert dataclasses.is_dataclass(TemplateBackgroundOptions)

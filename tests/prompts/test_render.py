"""prompts.get / prompts.render: id resolution, placeholder validation and fencing of untrusted text."""
import pytest

import prompts
from prompts import PromptError

ALGORITHMS = ["subject.v1", "angle.v1", "logo.v1", "detail.v1", "background_refs.v1", "background_prompts.v1",
              "background_render.v1"]


def test_every_algorithm_and_enrichment_prompt_is_released():
    expected = set(ALGORITHMS) | {"enrich_title.v1", "enrich_title_strict.v1", "enrich_title_zh.v1",
                                  "enrich_title_zh_strict.v1", "system.v1", "system_zh.v1"}
    assert expected <= set(prompts.available())


def test_bare_task_resolves_to_latest_version():
    assert prompts.get("subject").id == "subject.v1"
    assert prompts.latest("enrich_title") == "enrich_title.v1"


def test_unknown_task_is_a_clear_error():
    with pytest.raises(PromptError, match="unknown prompt task 'subjects'; tasks are angle, background_prompts"):
        prompts.get("subjects")


def test_unknown_version_lists_released_versions():
    with pytest.raises(PromptError, match=r"unknown prompt 'subject.v7'; released versions: subject.v1"):
        prompts.get("subject.v7")


def test_malformed_id():
    with pytest.raises(PromptError, match="malformed prompt id"):
        prompts.get("subject.latest")


def test_placeholders_of_each_image_prompt():
    fields = {pid: set(prompts.get(pid).fields) for pid in ALGORITHMS}
    assert fields == {
        "subject.v1": {"description"},
        "angle.v1": set(),
        "logo.v1": {"description"},
        "detail.v1": {"description"},
        "background_refs.v1": set(),
        "background_prompts.v1": {"description"},
        "background_render.v1": {"description", "background"},
    }


def test_missing_field_is_an_error():
    with pytest.raises(PromptError, match=r"background_render.v1: missing field\(s\) background"):
        prompts.render("background_render", description="Nike Track Pants")


def test_unexpected_field_is_an_error():
    with pytest.raises(PromptError, match=r"unexpected field\(s\) colour \(expected: description\)"):
        prompts.render("subject", description="Nike Track Pants", colour="blue")


def test_non_string_field_is_an_error():
    with pytest.raises(PromptError, match="field description must be a string, got NoneType"):
        prompts.render("subject", description=None)


def test_render_subject_whole_prompt():
    text = prompts.render("subject.v1", description="Nike Men's Navy Blue Track Pants")
    assert text.startswith(
        "**Product Description:** \n<<<\nNike Men's Navy Blue Track Pants\n>>>\n\n"
        "**Product Image:** the attached product image.\n\n"
        "**Task Instruction:** Edit the product image based on the product description and the given image, "
        "retaining only the product mentioned in the description and making it the primary focus.\n"
    )
    assert text.endswith(
        "7. The final output should clearly present the product structure and be suitable for visual retrieval "
        "and e-commerce listing scenarios.\n"
    )


def test_background_render_inserts_the_background_as_requirement_two():
    text = prompts.render(
        "background_render", description="Nike Running Shoes", background="A sunlit running track in shallow focus."
    )
    assert "\n2. Background: A sunlit running track in shallow focus.\n" in text


def test_angle_takes_no_fields():
    assert prompts.render("angle").startswith("**Product Image:** the attached main subject image.")


def test_empty_value_is_marked_none():
    assert "<<<\n(none)\n>>>" in prompts.render("subject", description="  ")


def test_rendering_is_deterministic():
    assert prompts.render("logo", description="Puma cap") == prompts.render("logo.v1", description="Puma cap")

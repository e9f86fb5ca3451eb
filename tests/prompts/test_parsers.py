"""Strict parsers of structured model answers, on real answers and broken ones."""
import json

import jsonschema
import pytest

from prompts.parsers import (
    BACKGROUND_PROMPTS_SCHEMA,
    ENRICHED_TITLE_SCHEMA,
    ParseError,
    parse_background_prompts,
    parse_enriched_title,
)

TEN = [f"A bright studio backdrop, variant {i}, with soft light." for i in range(10)]


def reason(fn, *args, **kwargs):
    with pytest.raises(ParseError) as info:
        fn(*args, **kwargs)
    return info.value.reason


def test_plain_json_object():
    assert parse_enriched_title('{"enriched_title": "Nike Navy Blue Track Pants"}') == "Nike Navy Blue Track Pants"


def test_markdown_code_fence_is_accepted():
    answer = '```json\n{"enriched_title": "Nike Navy Blue Track Pants"}\n```'
    assert parse_enriched_title(answer) == "Nike Navy Blue Track Pants"


def test_unicode_and_escapes():
    assert parse_enriched_title('{"enriched_title": "\\u8010\\u514b \\"Air\\" 运动裤"}') == '耐克 "Air" 运动裤'


def test_prose_around_json_is_rejected():
    assert reason(parse_enriched_title, 'Sure! Here it is: {"enriched_title": "Nike"}') == "not_json"
    assert reason(parse_enriched_title, '{"enriched_title": "Nike"} Hope this helps!') == "trailing_text"


def test_two_objects_are_rejected():
    assert reason(parse_enriched_title, '{"enriched_title": "A"}\n{"enriched_title": "B"}') == "trailing_text"


def test_gibberish_from_a_random_model_is_rejected():
    # What a random-weight model served by vLLM produced under guided decoding, cut at max_tokens.
    answer = "{" + "\t" * 23 + " " * 37
    assert reason(parse_enriched_title, answer, finish_reason="length") == "truncated"
    assert reason(parse_enriched_title, answer) == "not_json"
    assert reason(parse_enriched_title, "itrightiright\x06\x06") == "not_json"


@pytest.mark.parametrize("answer, says", [("[" * 5000, "nested too deep"),
                                           ('{"enriched_title": ' + "9" * 5000 + "}", "Exceeds the limit")])
def test_json_that_python_cannot_hold_is_not_json(answer, says):
    """Guided decoding allows 1,000 brackets within max_tokens; the answer is refused, never a stage error."""
    with pytest.raises(ParseError) as info:
        parse_enriched_title(answer)
    assert info.value.reason == "not_json" and says in str(info.value)


def test_truncated_string():
    assert reason(parse_enriched_title, '{"enriched_title": "Nike Navy Bl') == "not_json"


def test_wrong_shapes():
    assert reason(parse_enriched_title, '["Nike"]') == "not_object"
    assert reason(parse_enriched_title, '{"title": "Nike"}') == "missing_key"
    assert reason(parse_enriched_title, '{"enriched_title": "Nike", "notes": "x"}') == "unexpected_key"
    assert reason(parse_enriched_title, '{"enriched_title": 42}') == "wrong_type"
    assert reason(parse_enriched_title, '{"enriched_title": "  "}') == "empty"
    assert reason(parse_enriched_title, "") == "empty"
    assert reason(parse_enriched_title, None) == "empty"


def test_error_detail_says_what_was_found():
    with pytest.raises(ParseError, match=r"missing_key: no 'enriched_title' key \(keys: 'title'\)"):
        parse_enriched_title('{"title": "Nike"}')


def test_background_prompts_list():
    assert parse_background_prompts(json.dumps({"background_prompts": TEN})) == TEN


def test_background_prompts_wrong_count_and_types():
    assert reason(parse_background_prompts, json.dumps({"background_prompts": TEN[:9]})) == "wrong_count"
    assert reason(parse_background_prompts, json.dumps({"background_prompts": TEN[:9] + [3]})) == "wrong_type"
    assert reason(parse_background_prompts, json.dumps({"background_prompts": "a, b"})) == "wrong_type"
    assert reason(parse_background_prompts, json.dumps({"background_prompts": TEN[:9] + [""]})) == "empty"


def test_background_prompts_count_parameter():
    assert parse_background_prompts(json.dumps({"background_prompts": TEN[:3]}), count=3) == TEN[:3]


def test_schemas_accept_what_parsers_accept():
    jsonschema.validate({"enriched_title": "Nike"}, ENRICHED_TITLE_SCHEMA)
    jsonschema.validate({"background_prompts": TEN}, BACKGROUND_PROMPTS_SCHEMA)


def test_schemas_reject_what_parsers_reject():
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"enriched_title": "Nike", "notes": "x"}, ENRICHED_TITLE_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"background_prompts": TEN[:9]}, BACKGROUND_PROMPTS_SCHEMA)

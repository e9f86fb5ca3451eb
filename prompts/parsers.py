"""Strict parsers of the structured answers our prompts ask for, and the JSON schemas behind them.

The schemas go to the server as guided decoding (`response_format: json_schema`), so a capable server can only
produce valid JSON; the parsers still check everything, because guided decoding is optional, a model can stop
at max_tokens mid-string, and some backends (transformers) have no guidance at all.

Strict means: exactly one JSON object, the required key, no other key, the right types. The only leniency is a
single Markdown code fence around the object (```json ... ```), which chat models add by habit. Everything else
(prose before or after, two objects, a truncated string) is rejected with a ParseError whose `reason` is a short
stable code (not_json, trailing_text, not_object, missing_key, unexpected_key, wrong_type, empty, too_long,
wrong_count, truncated) and whose `detail` says what was found.

Meaning (does the title keep the brand? is it in the right language?) is checked by augment.stages.enrich_title.guards.
"""
from __future__ import annotations

import json
import re
from typing import Any

MAX_TITLE_CHARS = 600  # schema cap; the guards apply the real, source-relative bounds
MAX_BACKGROUND_CHARS = 300

ENRICHED_TITLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"enriched_title": {"type": "string", "minLength": 1, "maxLength": MAX_TITLE_CHARS}},
    "required": ["enriched_title"],
    "additionalProperties": False,
}


def background_prompts_schema(count: int = 10) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "background_prompts": {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "maxLength": MAX_BACKGROUND_CHARS},
                "minItems": count,
                "maxItems": count,
            }
        },
        "required": ["background_prompts"],
        "additionalProperties": False,
    }


BACKGROUND_PROMPTS_SCHEMA = background_prompts_schema(10)

_CODE_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(?P<body>.*?)\n?\s*```$", re.DOTALL)


class ParseError(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _snippet(text: str, n: int = 60) -> str:
    text = text.strip()
    return repr(text if len(text) <= n else text[:n] + "...")


def load_object(text: str | None, finish_reason: str | None = None) -> dict:
    """The single JSON object in `text` (optionally inside one Markdown code fence), or ParseError."""
    if finish_reason == "length":
        raise ParseError("truncated", "the answer stopped at the token limit")
    if text is None or not text.strip():
        raise ParseError("empty", "the answer is empty")
    body = text.strip()
    fenced = _CODE_FENCE.match(body)
    if fenced:
        body = fenced["body"].strip()
    try:
        value, end = json.JSONDecoder().raw_decode(body)
    except json.JSONDecodeError as exc:
        raise ParseError("not_json", f"{exc.msg} at char {exc.pos} in {_snippet(body)}") from None
    except (ValueError, RecursionError) as exc:  # an integer of over 4,300 digits; arrays nested past the stack
        what = "nested too deep" if isinstance(exc, RecursionError) else str(exc).split(":")[0]
        raise ParseError("not_json", f"{what} in {_snippet(body)}") from None
    if body[end:].strip():
        raise ParseError("trailing_text", f"text after the JSON value: {_snippet(body[end:])}")
    if not isinstance(value, dict):
        raise ParseError("not_object", f"expected a JSON object, got {type(value).__name__}")
    return value


def _only_key(obj: dict, key: str) -> Any:
    if key not in obj:
        raise ParseError("missing_key", f"no {key!r} key (keys: {', '.join(map(repr, obj)) or 'none'})")
    extra = sorted(set(obj) - {key})
    if extra:
        raise ParseError("unexpected_key", f"unexpected key(s) {', '.join(map(repr, extra))}")
    return obj[key]


def parse_enriched_title(text: str | None, finish_reason: str | None = None) -> str:
    """The enriched title in an answer to enrich_title.* prompts: {"enriched_title": "..."}."""
    value = _only_key(load_object(text, finish_reason), "enriched_title")
    if not isinstance(value, str):
        raise ParseError("wrong_type", f"enriched_title must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ParseError("empty", "enriched_title is empty")
    if len(value) > MAX_TITLE_CHARS:
        raise ParseError("too_long", f"enriched_title has {len(value)} characters (max {MAX_TITLE_CHARS})")
    return value.strip()


def parse_background_prompts(text: str | None, count: int = 10, finish_reason: str | None = None) -> list[str]:
    """The list in an answer to background_prompts.* prompts: {"background_prompts": [count strings]}."""
    value = _only_key(load_object(text, finish_reason), "background_prompts")
    if not isinstance(value, list):
        raise ParseError("wrong_type", f"background_prompts must be a list, got {type(value).__name__}")
    if len(value) != count:
        raise ParseError("wrong_count", f"expected {count} background prompts, got {len(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ParseError("wrong_type", f"background_prompts[{i}] must be a string, got {type(item).__name__}")
        if not item.strip():
            raise ParseError("empty", f"background_prompts[{i}] is empty")
        if len(item) > MAX_BACKGROUND_CHARS:
            raise ParseError("too_long", f"background_prompts[{i}] has {len(item)} characters")
    return [item.strip() for item in value]

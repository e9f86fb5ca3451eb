"""The chat requests of enrich_title: which prompt, which fields, which output schema.

The first attempt sends enrich_title.vN (enrich_title_zh.vN for Chinese titles) with the title, description and
entities; a rejected answer is retried once with the strict prompt, which names the problem and lists the terms
the title must keep. The same request is built for every engine (openai, transformers, vllm).

Must not: send anything or parse answers.
"""
from __future__ import annotations

import prompts
from augment.llm.requests import ChatRequest, chat_messages
from augment.stages.text import dominant_script, normalise_space, strip_control
from augment.stages.enrich_title import guards
from prompts import parsers

# Problems the strict retry prompt explains to the model, by guard/parser reason.
# The released prompt of each request, pinned: a new version under prompts/templates/ changes no run until it is
# chosen here (a resumed run never mixes answers to two versions). The record's `prompt_id` names the one used.
PROMPT_IDS = {
    "system": "system.v1", "system_zh": "system_zh.v1",
    "enrich_title": "enrich_title.v1", "enrich_title_zh": "enrich_title_zh.v1",
    "enrich_title_strict": "enrich_title_strict.v1", "enrich_title_zh_strict": "enrich_title_zh_strict.v1",
}

PROBLEMS_EN = {
    "missing_entity": "it left out required terms",
    "language": "it was not written in the language of the product title",
    "too_short": "it was too short",
    "too_long": "it was too long",
    "html": "it contained HTML",
    "url": "it contained a link",
    "instructions": "it contained instructions or comments instead of a title",
    "control_chars": "it contained line breaks or control characters",
}
PROBLEMS_ZH = {
    "missing_entity": "遗漏了必须保留的词",
    "language": "没有使用商品标题的语言",
    "too_short": "太短",
    "too_long": "太长",
    "html": "包含 HTML",
    "url": "包含链接",
    "instructions": "包含指令或评论，而不是标题",
    "control_chars": "包含换行或控制字符",
}
PARSE_PROBLEM_EN = "it was not the requested JSON object"
PARSE_PROBLEM_ZH = "不是所要求的 JSON 对象"



def format_entities(entities: list[dict] | None) -> str:
    """Entities as 'LABEL: text' lines, in title order, each distinct (label, text) once."""
    lines, seen = [], set()
    for entity in entities or ():
        text = strip_control(entity.get("text") or "")
        line = f"{entity.get('label')}: {text}"
        if text and line.casefold() not in seen:
            seen.add(line.casefold())
            lines.append(line)
    return "\n".join(lines)


LANGUAGES = ("auto", "en", "zh")  # the `language` option: auto picks zh for CJK titles, else en


def choose_language(title: str, language: str) -> str:
    """'zh' or 'en': the prompt language for a title. `language` is en, zh or auto (zh for CJK titles)."""
    if language == "auto":
        return "zh" if dominant_script(title) == "CJK" else "en"
    return language


def enrich_request(
    title: str,
    description: str | None,
    entities: list[dict] | None,
    image_url: str | None,
    seed: int,
    language: str = "auto",
    bounds: guards.TitleBounds = guards.TitleBounds(),
    problem: str | None = None,
    max_description_chars: int = 1000,
) -> ChatRequest:
    """The enrichment request for one product; with `problem` (a guard/parser reason), the strict retry."""
    lang = choose_language(title, language)
    suffix = "_zh" if lang == "zh" else ""
    system_id = PROMPT_IDS[f"system{suffix}"]
    low, high = bounds.limits(normalise_space(title))
    fields = {
        "title": title,
        "description": (description or "")[:max_description_chars],
    }
    if problem is None:
        prompt_id = PROMPT_IDS[f"enrich_title{suffix}"]
        fields |= {"entities": format_entities(entities), "max_chars": str(high)}
    else:
        prompt_id = PROMPT_IDS[f"enrich_title{suffix}_strict"]
        table, default = (PROBLEMS_ZH, PARSE_PROBLEM_ZH) if lang == "zh" else (PROBLEMS_EN, PARSE_PROBLEM_EN)
        fields |= {
            "required": "\n".join(guards.kept_entities(entities)),
            "problem": table.get(problem, default),
            "min_chars": str(low),
            "max_chars": str(high),
        }
    prompt = prompts.render(prompt_id, **fields)
    return ChatRequest(
        prompt_id=prompt_id,
        system_id=system_id,
        messages=chat_messages(system_id, prompt, [image_url] if image_url else []),
        schema_name="enriched_title",
        schema=parsers.ENRICHED_TITLE_SCHEMA,
        seed=seed,
    )

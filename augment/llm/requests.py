"""Chat requests for the MLLM-driven stages: which prompt, which messages, which output schema.

One `ChatRequest` is one call to a chat model, in the OpenAI chat format every backend understands (the openai
backend sends it as is, the vllm engine backend hands the messages to `ray.data.llm`, the transformers backend
applies the model's chat template to them). Images travel as `data:image/jpeg;base64,...` URLs.

`ChatRequest.key` identifies the call for the response cache: prompt ids (their text never changes once
released), the messages with the image bytes inside them, the output schema and the decoding parameters. The
model name is added by the backend.

Must not: send anything, parse answers, or import a model library.
"""
from __future__ import annotations

import base64
import dataclasses
import io
from typing import Any

import prompts
from augment.stages.enrich_title import guards
from augment.core.util import stable_hash
from prompts import parsers

# Problems the strict retry prompt explains to the model, by guard/parser reason.
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


@dataclasses.dataclass(frozen=True)
class ChatRequest:
    prompt_id: str  # the task prompt, e.g. enrich_title.v1 (recorded in the output row)
    system_id: str  # the system prompt, e.g. system.v1
    messages: list[dict[str, Any]]
    schema_name: str
    schema: dict[str, Any]
    seed: int  # per product, so sampled decoding is reproducible

    def key(self, model: str, decoding: dict[str, Any]) -> str:
        """Cache key: the same (prompts, model, decoding, input incl. image) gives the same key everywhere."""
        return stable_hash(self.prompt_id, self.system_id, model, decoding, self.schema, self.seed, self.messages)


def image_data_url(image: bytes, max_side: int | None = None) -> str:
    """A JPEG data URL of `image` (RGB JPEG: the validate stage's working image, or `codec.encode_image` output), shrunk
    to `max_side` if given."""
    if max_side:
        from PIL import Image

        with Image.open(io.BytesIO(image)) as im:
            if max(im.size) > max_side:
                im = im.convert("RGB")
                im.thumbnail((max_side, max_side))
                buf = io.BytesIO()
                im.save(buf, format="JPEG", quality=90)
                image = buf.getvalue()
    return "data:image/jpeg;base64," + base64.b64encode(image).decode("ascii")


def format_entities(entities: list[dict] | None) -> str:
    """Entities as 'LABEL: text' lines, in title order, each distinct (label, text) once."""
    lines, seen = [], set()
    for entity in entities or ():
        text = guards.strip_control(entity.get("text") or "")
        line = f"{entity.get('label')}: {text}"
        if text and line.casefold() not in seen:
            seen.add(line.casefold())
            lines.append(line)
    return "\n".join(lines)


def choose_language(title: str, language: str) -> str:
    """'zh' or 'en': the prompt language for a title. `language` is en, zh or auto (zh for CJK titles)."""
    if language == "auto":
        return "zh" if guards.dominant_script(title) == "CJK" else "en"
    return language


def _messages(system_id: str, text: str, images: list[str]) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": url}} for url in images]
    content.append({"type": "text", "text": text})
    return [
        {"role": "system", "content": prompts.render(system_id)},
        {"role": "user", "content": content},
    ]


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
    system_id = prompts.resolve(f"system{suffix}")
    low, high = bounds.limits(guards.normalise_space(title))
    fields = {
        "title": title,
        "description": (description or "")[:max_description_chars],
    }
    if problem is None:
        prompt_id = prompts.resolve(f"enrich_title{suffix}")
        fields |= {"entities": format_entities(entities), "max_chars": str(high)}
    else:
        prompt_id = prompts.resolve(f"enrich_title{suffix}_strict")
        table, default = (PROBLEMS_ZH, PARSE_PROBLEM_ZH) if lang == "zh" else (PROBLEMS_EN, PARSE_PROBLEM_EN)
        fields |= {
            "required": "\n".join(guards.kept_entities(entities)),
            "problem": table.get(problem, default),
            "min_chars": str(low),
            "max_chars": str(high),
        }
    text = prompts.render(prompt_id, **fields)
    return ChatRequest(
        prompt_id=prompt_id,
        system_id=system_id,
        messages=_messages(system_id, text, [image_url] if image_url else []),
        schema_name="enriched_title",
        schema=parsers.ENRICHED_TITLE_SCHEMA,
        seed=seed,
    )


def product_text(title: str | None, description: str | None) -> str:
    """What Algorithm 6 describes a product by: its title, then its description when it has one."""
    title = title or ""
    return f"{title}\n{description}" if description else title


def background_request(
    description: str,
    image_url: str | None,
    seed: int,
    reference_urls: list[str] | None = None,
    max_description_chars: int = 1000,
) -> ChatRequest:
    """Algorithm 6 (with Algorithm 5's reference images first, when given) for one product."""
    prompt_id = prompts.resolve("background_prompts")
    system_id = prompts.resolve("system")
    text = prompts.render(prompt_id, description=description[:max_description_chars])
    images = [image_url] if image_url else []
    messages = _messages(system_id, text, images)
    if reference_urls:
        refs = [{"type": "image_url", "image_url": {"url": url}} for url in reference_urls]
        refs.append({"type": "text", "text": prompts.render("background_refs") + "\n\n"})
        messages[1]["content"] = refs + messages[1]["content"]
        prompt_id = f"{prompts.resolve('background_refs')}+{prompt_id}"
    return ChatRequest(
        prompt_id=prompt_id,
        system_id=system_id,
        messages=messages,
        schema_name="background_prompts",
        schema=parsers.BACKGROUND_PROMPTS_SCHEMA,
        seed=seed,
    )

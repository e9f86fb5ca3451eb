"""The chat request of background_prompts: Algorithm 6, after Algorithm 5's reference images when configured.

The same request is built for every engine (openai, transformers, vllm).

Must not: send anything or parse answers.
"""
from __future__ import annotations

import prompts
from augment.llm.requests import ChatRequest, chat_messages
from prompts import parsers

# The released prompt of each part of the request, pinned (as enrich_title/requests.py pins its own): a new
# version under prompts/templates/ changes no run until it is chosen here.
PROMPT_IDS = {"system": "system.v1", "background_prompts": "background_prompts.v1", "background_refs": "background_refs.v1"}


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
    prompt_id = PROMPT_IDS["background_prompts"]
    system_id = PROMPT_IDS["system"]
    text = prompts.render(prompt_id, description=description[:max_description_chars])
    images = [image_url] if image_url else []
    messages = chat_messages(system_id, text, images)
    if reference_urls:
        refs = [{"type": "image_url", "image_url": {"url": url}} for url in reference_urls]
        refs.append({"type": "text", "text": prompts.render(PROMPT_IDS["background_refs"]) + "\n\n"})
        messages[1]["content"] = refs + messages[1]["content"]
        prompt_id = f"{PROMPT_IDS['background_refs']}+{prompt_id}"
    return ChatRequest(
        prompt_id=prompt_id,
        system_id=system_id,
        messages=messages,
        schema_name="background_prompts",
        schema=parsers.BACKGROUND_PROMPTS_SCHEMA,
        seed=seed,
    )

"""Chat requests and answers: what every language-model engine takes and gives back.

One `ChatRequest` is one call to a chat model, in the OpenAI chat format every engine understands (the openai
engine sends it as is, the vllm engine hands the messages to `ray.data.llm`, the transformers engine applies the
model's chat template to them). Images travel as `data:image/jpeg;base64,...` URLs. A `Completion` is one
answer, or the transport error that prevented one.

`ChatRequest.key` identifies the call for the response cache: prompt ids (their text never changes once
released), the messages with the image bytes inside them, the output schema and the decoding parameters. The
model name is added by the client.

Which prompt a task sends is the task's business (augment/stages/<stage>/requests.py); this module knows no task.
Must not: send anything, parse answers, or import a model library.
"""
from __future__ import annotations

import base64
import dataclasses
import io
from typing import Any

import prompts
from augment.core.util import stable_hash


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


@dataclasses.dataclass
class Completion:
    """An engine's answer to one request: the text, or the transport error that prevented one."""

    text: str | None = None
    finish_reason: str | None = None  # stop | length | ...
    error: str | None = None  # timeout | connection | http_<code> | bad_response | too_large | engine; None: succeeded
    cached: bool = False


def image_data_url(image: bytes, max_side: int | None = None) -> str:
    """A JPEG data URL of `image` (RGB JPEG: the validate stage's working image, or `codec.encode` output),
    shrunk to `max_side` if given."""
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


def image_urls(images: list[bytes | None], send_image: bool, max_side: int) -> list[str | None]:
    """The data URL of each product image to send (None where there is none, or where images are not sent)."""
    if not send_image:
        return [None] * len(images)
    return [image_data_url(image, max_side) if image else None for image in images]


def chat_messages(system_id: str, text: str, images: list[str]) -> list[dict[str, Any]]:
    """A system prompt and one user turn: the images first, then the text."""
    content: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": url}} for url in images]
    content.append({"type": "text", "text": text})
    return [
        {"role": "system", "content": prompts.render(system_id)},
        {"role": "user", "content": content},
    ]

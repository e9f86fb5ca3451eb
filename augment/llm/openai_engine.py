"""The `openai` engine: any OpenAI-compatible chat server.

vLLM's server first (`vllm serve` / docker/vllm), but any server speaking /v1/chat/completions works. Requests
carry images as data URLs and the output JSON schema as `response_format` (guided decoding in vLLM). The
transport (bounded concurrency, timeouts, backoff) is augment.llm.http's; the cache is the client's; the guarded
flow is the stage's.

Config (stages.enrich_title / stages.background_prompts):
    backend: openai
    options:
      base_url: http://vllm:8000/v1
      model: Qwen/Qwen2.5-VL-7B-Instruct      # the name the server serves
      api_key_env: MOON_LLM_API_KEY            # the *name* of the variable holding the key; unset: no auth
      max_concurrency: 16
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Sequence
from typing import Any

from augment.core.config import NOT_HASHED, ConfigError
from augment.llm.http import STRUCTURED_OUTPUT, OpenAIChatClient
from augment.llm.requests import ChatRequest, Completion

log = logging.getLogger(__name__)

# The key's variable must be named as one: a config (the DAG form's config_file names any file) must not send
# another secret of the worker's environment (AWS_SECRET_ACCESS_KEY, a token) to the server it names.
_KEY_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*_API_KEY$")


@dataclasses.dataclass(frozen=True)
class OpenAIOptions:
    # How the server is reached: not in the config hash (the served `model` is), so a run resumes after its
    # server moves or its timeouts are tuned.
    base_url: str = dataclasses.field(default="http://127.0.0.1:8000/v1", metadata=NOT_HASHED)
    # The environment variable holding the API key (never the key itself).
    api_key_env: str = dataclasses.field(default="MOON_LLM_API_KEY", metadata=NOT_HASHED)
    timeout_s: float = dataclasses.field(default=120.0, metadata=NOT_HASHED)  # per request
    max_concurrency: int = dataclasses.field(default=16, metadata=NOT_HASHED)  # requests in flight per actor
    max_retries: int = dataclasses.field(default=5, metadata=NOT_HASHED)
    backoff_s: float = dataclasses.field(default=0.5, metadata=NOT_HASHED)
    backoff_max_s: float = dataclasses.field(default=30.0, metadata=NOT_HASHED)
    structured_output: str = "auto"  # auto | json_schema | off

    def check_data(self, key: str) -> None:
        """Checked when the config is validated (`moon config`, `--dry-run`) and when the stage is built."""
        if not _KEY_ENV_NAME.match(self.api_key_env):
            raise ConfigError(f"{key}.api_key_env must name an environment variable ending in _API_KEY (e.g. "
                              f"MOON_LLM_API_KEY), not hold a key or name another variable; got {self.api_key_env!r}")
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"{key}.base_url must be an http:// or https:// URL, got {self.base_url!r}")
        for name, low, exclusive in (("timeout_s", 0, True), ("max_concurrency", 1, False), ("max_retries", 0, False),
                                     ("backoff_s", 0, False), ("backoff_max_s", self.backoff_s, False)):
            value = getattr(self, name)
            if value < low or (exclusive and value == low):
                raise ConfigError(f"{key}.{name} must be {'over' if exclusive else 'at least'} {low:g}, got {value:g}")
        if self.structured_output not in STRUCTURED_OUTPUT:
            raise ConfigError(f"{key}.structured_output must be {', '.join(STRUCTURED_OUTPUT[:-1])} or "
                              f"{STRUCTURED_OUTPUT[-1]}, got {self.structured_output!r}")


class OpenAIEngine:
    requires: tuple[str, ...] = ()
    is_dataset = False

    def __init__(self, options, label: str = "openai"):
        """`options` carry OpenAIOptions' and ModelOptions' fields (checked by their `check_data`); `label` names
        the stage in logs."""
        self.options = options
        self.label = label
        self.client: OpenAIChatClient | None = None

    def setup(self) -> None:
        o = self.options
        self.client = OpenAIChatClient(
            o.base_url,
            api_key=os.environ.get(o.api_key_env) or None,
            timeout_s=o.timeout_s,
            max_concurrency=o.max_concurrency,
            max_retries=o.max_retries,
            backoff_s=o.backoff_s,
            backoff_max_s=o.backoff_max_s,
            structured_output=o.structured_output,
        )
        log.info("%s model %s: %s", self.label, o.model, self.client.policy())

    def decoding(self) -> dict[str, Any]:
        return {"structured_output": self.options.structured_output}

    def payload(self, request: ChatRequest) -> dict[str, Any]:
        o = self.options
        body = {
            "model": o.model,
            "messages": request.messages,
            "temperature": o.temperature,
            "top_p": o.top_p,
            "max_tokens": o.max_tokens,
            "seed": request.seed % (2**31),
        }
        if o.structured_output != "off":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": request.schema_name, "schema": request.schema, "strict": True},
            }
        return body

    def generate(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        if self.client is None:
            self.setup()
        return self.client.complete_many([self.payload(r) for r in requests])

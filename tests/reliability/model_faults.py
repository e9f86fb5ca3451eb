"""A misbehaving OpenAI-compatible model server for the reliability tests: a real HTTP server on 127.0.0.1
(testkit.openai_stub.StubServer) whose answers follow a fault script keyed by the product title in the prompt."""
from __future__ import annotations

import json
import re
import threading
import time
from collections import defaultdict

from testkit.openai_stub import DROP, StubServer, chat_answer

SUFFIX = " with Regular Fit"  # what the healthy model adds to a title (passes every guard)
TITLE = re.compile(r"<<<\n(.*?)\n>>>", re.S)

# fault kind -> answer per attempt (1-based); the last entry repeats for later attempts.
FAULTS = {
    "healthy": ["ok"],
    "http_500_once": ["500", "ok"],
    "retry_after": ["429", "ok"],
    "timeout_once": ["hang", "ok"],
    "slow": ["slow_ok"],
    "dropped_once": ["drop", "ok"],
    "malformed_json": ["malformed"],
    "empty_choices": ["empty"],
    "always_503": ["503"],
}


class FaultyModel:
    """`respond` for StubServer. `hang_s` must exceed the client's timeout, `slow_s` stay below it."""

    def __init__(self, kinds_by_title: dict[str, str], hang_s: float = 1.2, slow_s: float = 0.3,
                 retry_after_s: int = 1):
        self.kinds = kinds_by_title
        self.hang_s, self.slow_s, self.retry_after_s = hang_s, slow_s, retry_after_s
        self.attempts: dict[str, list[float]] = defaultdict(list)  # title -> arrival time of each attempt
        self.lock = threading.Lock()

    def __call__(self, body: dict):
        text = next(p["text"] for p in body["messages"][1]["content"] if p["type"] == "text")
        title = TITLE.search(text).group(1)
        with self.lock:
            self.attempts[title].append(time.monotonic())
            attempt = len(self.attempts[title])
        script = FAULTS[self.kinds[title]]
        action = script[min(attempt, len(script)) - 1]
        good = chat_answer(json.dumps({"enriched_title": title + SUFFIX}))
        if action == "ok":
            return 200, {}, good
        if action == "slow_ok":
            time.sleep(self.slow_s)
            return 200, {}, good
        if action == "hang":
            time.sleep(self.hang_s)  # the client has given up by now
            return 200, {}, good
        if action == "drop":
            return DROP
        if action == "500":
            return 500, {}, {"error": {"message": "internal error", "type": "server_error"}}
        if action == "503":
            return 503, {}, {"error": {"message": "engine overloaded", "type": "server_error"}}
        if action == "429":
            return 429, {"Retry-After": str(self.retry_after_s)}, {"error": {"message": "rate limited"}}
        if action == "malformed":
            return 200, {}, '{"id": "chatcmpl-x", "choices": [{"message": {"content": "{\\"enriched'
        if action == "empty":
            return 200, {}, {"id": "chatcmpl-x", "object": "chat.completion", "choices": []}
        raise AssertionError(action)


def serve(kinds_by_title: dict[str, str], **kwargs) -> tuple[StubServer, FaultyModel]:
    model = FaultyModel(kinds_by_title, **kwargs)
    return StubServer(model), model

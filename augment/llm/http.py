"""An async client for OpenAI-compatible chat servers (vLLM first), with bounded concurrency and retries.

Sync callers (a Stage's `process`) call `complete_many(payloads)`; the requests run concurrently on the client's
own event loop in a background thread, at most `max_concurrency` at a time, over kept-alive connections. The
loop and the connection pool live as long as the client, so a Ray actor pays for connections once.

Retry policy (logged once at start): 408, 429, 500, 502, 503 and 504 answers (RETRY_STATUS), timeouts and connection
errors are retried up to `max_retries` times with exponential backoff (backoff_s * 2^attempt, capped at
backoff_max_s) and jitter (the delay is drawn from [d/2, d]); a Retry-After header (seconds or HTTP date) replaces
the computed delay, capped at retry_after_max_s. `timeout_s` bounds each try from sending to the last byte of its
answer. Other 4xx and 5xx answers are not retried. A request that still fails becomes a Completion with `error`
(timeout | connection | http_<code> | bad_response | too_large: an answer over MAX_ANSWER_BYTES), never an
exception: one product must not stop a batch.

Structured output: `response_format: json_schema` with the request's schema. In `auto` mode a 400 answer that
names response_format/json_schema switches it off for the rest of the run (logged), for servers without it; every
request it refused is sent again without it.

The API key comes from the environment variable the config names; it is sent as a Bearer token and never logged.
"""
from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import threading
import time
from collections.abc import Coroutine
from typing import Any

import httpx

from augment.llm.requests import Completion

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_ANSWER_BYTES = 4 << 20  # an answer over this is not read: `too_large` (1,024 tokens of JSON take ~10 KB)
REPORTS_PER_KIND = 3  # distinct server messages of one kind that are logged, per client
CLOSE_TIMEOUT_S = 5.0  # how long close() waits for the connections to close and the loop's thread to stop


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None if absent/unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


# How an answer is held to its JSON schema: auto (the server's response_format json_schema, plain text where the
# server refuses it), json_schema (always), off (never).
STRUCTURED_OUTPUT = ("auto", "json_schema", "off")


class OpenAIChatClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_concurrency: int = 16,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        retry_after_max_s: float = 120.0,
        structured_output: str = "auto",
    ):
        if structured_output not in STRUCTURED_OUTPUT:
            raise ValueError(f"structured_output must be auto, json_schema or off, got {structured_output!r}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout_s = timeout_s
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.retry_after_max_s = retry_after_max_s
        self.structured_output = structured_output
        self.retries = 0  # retried attempts so far (visible in logs and the benchmark)
        self._rng = random.Random()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: httpx.AsyncClient | None = None
        self._reported: dict[str, set[str]] = {}
        self._requested_output = structured_output

    def policy(self) -> str:
        return (
            f"POST {self.url}: concurrency {self.max_concurrency}, timeout {self.timeout_s:g} s, up to "
            f"{self.max_retries} retries on {'/'.join(map(str, sorted(RETRY_STATUS)))}/timeouts/connection errors, "
            f"backoff {self.backoff_s:g} s doubling to {self.backoff_max_s:g} s with jitter, "
            f"Retry-After honoured (max {self.retry_after_max_s:g} s), "
            f"structured output {self.structured_output}, auth {'bearer' if self._headers else 'none'}"
        )

    # -- event loop in a background thread ---------------------------------------------------------------------
    def _run(self, coro: Coroutine) -> Any:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="openai-client", daemon=True)
            self._thread.start()
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        """Close the connections and stop the loop's thread. Bounded: at interpreter exit (`__del__`) the daemon
        thread may already be gone, and waiting on it would keep the process from ever exiting."""
        if self._loop is None:
            return
        loop, thread, client = self._loop, self._thread, self._client
        self._loop = self._thread = self._client = None
        if thread.is_alive():
            if client is not None:
                try:
                    asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(timeout=CLOSE_TIMEOUT_S)
                except Exception:  # noqa: BLE001 - a connection that will not close is dropped with the loop
                    pass
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=CLOSE_TIMEOUT_S)
        if not thread.is_alive():
            loop.close()

    def __del__(self):  # best effort; Ray actors exit without calling close()
        try:
            self.close()
        except Exception:
            pass

    # -- requests ------------------------------------------------------------------------------------------------
    def complete_many(self, payloads: list[dict[str, Any]]) -> list[Completion]:
        """Send every payload (a chat.completions body); one Completion per payload, in order."""
        return self._run(self._complete_all(payloads))

    async def _complete_all(self, payloads: list[dict[str, Any]]) -> list[Completion]:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout_s, connect=min(10.0, self.timeout_s)),
                limits=httpx.Limits(max_connections=self.max_concurrency,
                                    max_keepalive_connections=self.max_concurrency),
                headers=self._headers,
            )
        gate = asyncio.Semaphore(self.max_concurrency)

        async def one(payload):
            async with gate:
                return await self._complete(payload)

        return list(await asyncio.gather(*(one(p) for p in payloads)))

    def _body(self, payload: dict[str, Any]) -> dict[str, Any]:
        if self.structured_output == "off":
            return {k: v for k, v in payload.items() if k != "response_format"}
        return payload

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.retry_after_max_s)
        d = min(self.backoff_max_s, self.backoff_s * (2**attempt))
        return d / 2 + self._rng.random() * d / 2

    async def _complete(self, payload: dict[str, Any]) -> Completion:
        attempt = 0
        while True:
            error, retry_after = None, None
            body = self._body(payload)
            try:  # httpx bounds each read; the deadline bounds the whole answer (a server trickling bytes)
                status, headers, data = await asyncio.wait_for(self._post(body), self.timeout_s)
            except (httpx.TimeoutException, TimeoutError):
                error = "timeout"
            except httpx.DecodingError as exc:  # a Content-Encoding the body does not have: the same again
                self._report("undecodable response body", str(exc))
                return Completion(error="bad_response")
            except httpx.TransportError as exc:
                error = "connection"
                self._report("connection error", type(exc).__name__)
            else:
                if data is None:
                    self._report("answer too large", f"over {MAX_ANSWER_BYTES} bytes, not read")
                    return Completion(error="too_large")
                if status == 200:
                    return self._completion(data)
                error = f"http_{status}"
                text = data.decode("utf-8", errors="replace")
                if status == 400 and self._downgrade(text, "response_format" in body):
                    continue  # resend at once without response_format
                if status not in RETRY_STATUS:
                    moved = headers.get("location") if 300 <= status < 400 else None  # base_url names an old place
                    self._report(error, f"redirected to {moved}; give that as base_url" if moved else text[:300])
                    return Completion(error=error)
                retry_after = retry_after_seconds(headers.get("retry-after"))
            if attempt >= self.max_retries:
                log.warning("openai: %s after %d retries, giving up on this request", error, attempt)
                return Completion(error=error)
            delay = self._delay(attempt, retry_after)
            attempt += 1
            self.retries += 1
            log.info("openai: %s, retry %d/%d in %.2f s%s", error, attempt, self.max_retries, delay,
                     " (Retry-After)" if retry_after is not None else "")
            await asyncio.sleep(delay)

    async def _post(self, body: dict[str, Any]) -> tuple[int, httpx.Headers, bytes | None]:
        """(status, headers, body) of one request; body None when it runs past MAX_ANSWER_BYTES (the rest is not
        read: a server streaming without end must not fill the worker's memory)."""
        async with self._client.stream("POST", self.url, json=body) as response:
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    return response.status_code, response.headers, None
                chunks.append(chunk)
            return response.status_code, response.headers, b"".join(chunks)

    def _downgrade(self, text: str, sent_format: bool) -> bool:
        """Whether a 400 answer to a request sent with response_format refuses it, in `auto` mode: then it is off
        for the rest of the run. Every request refused so is resent, also those in flight when the first one was."""
        lowered = text.lower()
        if not (sent_format and self._requested_output == "auto"
                and ("response_format" in lowered or "json_schema" in lowered)):
            return False
        if self.structured_output != "off":
            self.structured_output = "off"
            log.warning("openai: the server rejected response_format json_schema; continuing without guided decoding")
        return True

    def _completion(self, data: bytes) -> Completion:
        try:
            choice = json.loads(data)["choices"][0]
            content = choice["message"].get("content")
            if content is not None and not isinstance(content, str):  # a list or number where text belongs
                raise TypeError(type(content).__name__)
            return Completion(text=content, finish_reason=choice.get("finish_reason"))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError):
            # AttributeError: a message that is null (a content filter) or text; RecursionError: JSON nested deep
            self._report("unexpected response body", data[:300].decode("utf-8", errors="replace"))
            return Completion(error="bad_response")

    def _report(self, kind: str, detail: str) -> None:
        """Warn of a server's message: the first REPORTS_PER_KIND distinct ones of each kind, then that more are not
        shown. A misconfiguration must not flood the logs, even when each answer quotes its own product."""
        seen = self._reported.setdefault(kind, set())
        if detail in seen or len(seen) > REPORTS_PER_KIND:
            return
        seen.add(detail)
        if len(seen) > REPORTS_PER_KIND:
            log.warning("openai: more %s messages are not shown", kind)
        else:
            log.warning("openai: %s: %s", kind, detail)

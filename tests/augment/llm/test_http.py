"""The OpenAI-compatible client against a real local HTTP server: retries, backoff, limits, auth."""
import email.utils
import logging
import time

import pytest

from augment.llm.http import OpenAIChatClient, retry_after_seconds
from testkit.openai_stub import StubServer, chat_answer

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}}


def scripted(*steps):
    """A respond function that plays `steps` in order, then answers OK."""
    steps = list(steps)

    def respond(body):
        return steps.pop(0) if steps else (200, {}, chat_answer('{"ok": true}'))

    return respond


def client_for(server, **kwargs):
    kwargs.setdefault("backoff_s", 0.01)
    kwargs.setdefault("backoff_max_s", 0.05)
    return OpenAIChatClient(server.base_url, **kwargs)


def test_answer_text_and_finish_reason():
    with StubServer(scripted()) as server:
        client = client_for(server)
        (completion,) = client.complete_many([BODY])
        client.close()
    assert (completion.text, completion.finish_reason, completion.error) == ('{"ok": true}', "stop", None)


def test_429_honours_retry_after():
    with StubServer(scripted((429, {"Retry-After": "0.3"}, {"error": "slow down"}))) as server:
        client = client_for(server)
        start = time.perf_counter()
        (completion,) = client.complete_many([BODY])
        elapsed = time.perf_counter() - start
        client.close()
    assert completion.error is None
    assert client.retries == 1
    assert elapsed >= 0.3


def test_5xx_retried_until_success():
    steps = [(503, {}, {"error": "busy"}), (502, {}, "bad gateway"), (500, {}, {"error": "oops"})]
    with StubServer(scripted(*steps)) as server:
        client = client_for(server)
        (completion,) = client.complete_many([BODY])
        client.close()
    assert completion.error is None and client.retries == 3 and len(server.bodies) == 4


def test_gives_up_after_max_retries():
    with StubServer(lambda body: (503, {}, {"error": "busy"})) as server:
        client = client_for(server, max_retries=2)
        (completion,) = client.complete_many([BODY])
        client.close()
    assert completion.error == "http_503"
    assert len(server.bodies) == 3


def test_other_4xx_not_retried(caplog):
    with StubServer(lambda body: (404, {}, {"error": "no such model"})) as server:
        client = client_for(server)
        with caplog.at_level(logging.WARNING):
            completions = client.complete_many([BODY, BODY])
        client.close()
    assert [c.error for c in completions] == ["http_404", "http_404"]
    assert len(server.bodies) == 2
    assert sum("no such model" in r.message for r in caplog.records) == 1  # reported once


def test_timeout_is_retried_then_reported():
    with StubServer(scripted(), delay_s=0.5) as server:
        client = client_for(server, timeout_s=0.1, max_retries=1)
        (completion,) = client.complete_many([BODY])
        client.close()
    assert completion.error == "timeout"
    assert client.retries == 1  # counted by the client: a loaded machine may shut the server before it reads the retry
    assert 1 <= len(server.bodies) <= 2


def test_an_answer_that_trickles_in_times_out_as_a_whole():
    """A server (or proxy) sending a byte now and then never lets a read wait `timeout_s`: the request as a whole
    is bounded, or one product would hold its batch, and the run, for as long as the trickle lasts."""
    with StubServer(scripted(), trickle_s=0.05) as server:  # about 4 s for the whole answer
        client = client_for(server, timeout_s=0.4, max_retries=0)
        (completion,) = client.complete_many([BODY])
        client.close()
    assert completion.error == "timeout" and completion.text is None


def test_connection_refused():
    with StubServer(scripted()) as server:
        url = server.base_url
    client = OpenAIChatClient(url, max_retries=1, backoff_s=0.01)
    (completion,) = client.complete_many([BODY])
    client.close()
    assert completion.error == "connection"


@pytest.mark.parametrize("answer", [
    {"choices": []},
    chat_answer(["not", "text"]),  # content of another type: a transport error (not cached), never a crash later
    chat_answer(7),
    chat_answer({"title": "x"}),
    {"choices": [{"message": None, "finish_reason": "content_filter"}]},  # a content filter's answer
    {"choices": [{"message": "text where an object belongs"}]},
    "[" * 100_000,  # JSON nested past the parser's recursion limit
    (b"not gzip", {"content-encoding": "gzip"}),  # a Content-Encoding the body does not have
])
def test_malformed_answer_is_bad_response(answer):
    answer, headers = answer if isinstance(answer, tuple) else (answer, {})
    with StubServer(lambda body: (200, headers, answer)) as server:
        client = client_for(server)
        (completion,) = client.complete_many([BODY])
        client.close()
    assert (completion.error, completion.text) == ("bad_response", None)


def test_an_answer_without_content_is_no_text():
    answer = chat_answer("")
    answer["choices"][0]["message"]["content"] = None
    with StubServer(lambda body: (200, {}, answer)) as server:
        client = client_for(server)
        (completion,) = client.complete_many([BODY])
        client.close()
    assert (completion.error, completion.text) == (None, None)


def test_an_answer_past_the_size_limit_is_not_read(monkeypatch):
    """A server streaming without end (or a runaway answer) must not fill the worker's memory."""
    from augment.llm import http

    monkeypatch.setattr(http, "MAX_ANSWER_BYTES", 64 << 10)
    with StubServer(lambda body: (200, {}, chat_answer("x" * (100 << 10)))) as server:
        client = client_for(server)
        (big,) = client.complete_many([BODY])
        client.close()
    assert (big.error, big.text) == ("too_large", None)


def test_a_server_message_quoting_each_product_is_logged_a_few_times_not_once_per_product(caplog):
    bodies = iter(f'{{"choices": [], "product": {i}}}' for i in range(10))
    with StubServer(lambda body: (200, {}, next(bodies))) as server, caplog.at_level(logging.WARNING):
        client = client_for(server, max_concurrency=1)
        completions = client.complete_many([BODY] * 10)
        client.close()
    assert {c.error for c in completions} == {"bad_response"}
    said = [r.getMessage() for r in caplog.records if r.name == "augment.llm.http"]
    assert len(said) == 4 and said[-1] == "openai: more unexpected response body messages are not shown"


def test_a_redirect_names_where_it_points(caplog):
    """The client follows no redirect; the warning says where base_url should point."""
    with StubServer(lambda body: (307, {"location": "http://127.0.0.1:9/v1/chat/completions"}, "")) as server, \
            caplog.at_level(logging.WARNING):
        client = client_for(server)
        (moved,) = client.complete_many([BODY])
        client.close()
    assert moved.error == "http_307"
    assert ("openai: http_307: redirected to http://127.0.0.1:9/v1/chat/completions; give that as base_url"
            in caplog.text)


def test_concurrency_is_bounded():
    with StubServer(scripted(), delay_s=0.05) as server:
        client = client_for(server, max_concurrency=4)
        completions = client.complete_many([BODY] * 16)
        client.close()
    assert all(c.error is None for c in completions)
    assert server.peak_in_flight == 4


def test_structured_output_downgrade_in_auto_mode():
    def respond(body):
        if "response_format" in body:
            return 400, {}, {"error": {"message": "response_format json_schema is not supported"}}
        return 200, {}, chat_answer("{}")

    with StubServer(respond) as server:
        client = client_for(server)
        first, second = client.complete_many([BODY]) + client.complete_many([BODY])
        client.close()
    assert first.error is None and second.error is None
    assert ["response_format" in b for b in server.bodies] == [True, False, False]
    assert client.structured_output == "off"


def test_every_request_in_flight_that_response_format_refused_is_sent_again_without_it():
    def respond(body):
        if "response_format" in body:
            time.sleep(0.05)  # all eight are in flight before the first refusal comes back
            return 400, {}, {"error": {"message": "Unknown parameter: response_format"}}
        return 200, {}, chat_answer("{}")

    with StubServer(respond) as server:
        client = client_for(server, max_concurrency=8)
        completions = client.complete_many([BODY] * 8)
        client.close()
    assert [c.error for c in completions] == [None] * 8
    assert sum("response_format" not in b for b in server.bodies) == 8


def test_structured_output_json_schema_mode_does_not_downgrade():
    def respond(body):
        return 400, {}, {"error": {"message": "response_format json_schema is not supported"}}

    with StubServer(respond) as server:
        client = client_for(server, structured_output="json_schema")
        (completion,) = client.complete_many([BODY])
        client.close()
    assert completion.error == "http_400"


def test_api_key_sent_as_bearer_and_never_logged(caplog):
    with StubServer(lambda body: (500, {}, {"error": "x"})) as server:
        client = client_for(server, api_key="sk-secret-123", max_retries=1)
        with caplog.at_level(logging.DEBUG):
            client.complete_many([BODY])
            policy = client.policy()
        client.close()
    assert server.auth == ["Bearer sk-secret-123"] * 2
    assert "sk-secret" not in caplog.text and "sk-secret" not in policy


def test_retry_after_parsing():
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    date = email.utils.formatdate(1000.0 + 5, usegmt=True)
    assert retry_after_seconds(date, now=1000.0) == pytest.approx(5.0)


def test_invalid_structured_output_mode():
    with pytest.raises(ValueError, match="structured_output must be auto, json_schema or off"):
        OpenAIChatClient("http://127.0.0.1:1/v1", structured_output="grammar")


@pytest.mark.slow  # a child process
def test_a_process_whose_client_was_never_closed_exits():
    """The client left for `__del__` at interpreter exit (a stage never torn down) must not wait on its loop's
    thread, which exit has already stopped: the process would print its summary and never end."""
    import subprocess
    import sys

    with StubServer(scripted()) as server:
        url = server.base_url  # closed: nothing listens there any more
    code = ("from augment.llm.http import OpenAIChatClient\n"
            f"client = OpenAIChatClient({url!r}, max_retries=0, timeout_s=2)\n"
            "print(client.complete_many([{'model': 'm', 'messages': []}])[0].error)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (0, "connection\n"), done.stderr

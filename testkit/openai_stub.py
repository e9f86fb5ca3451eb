"""A real HTTP server on 127.0.0.1 that speaks just enough of the OpenAI chat API for client tests.

Each test hands it a `respond(body) -> (status, headers, payload)` function; the server records every request
body, the Authorization header and the peak number of requests in flight. `respond` may sleep (a slow or timed
out answer), return a payload string that is not JSON, or return DROP to close the connection without answering;
`trickle_s` sends each answer's body a byte at a time. The enrichment benchmark uses it with
an instant `respond` to measure the client's own overhead per request.
"""
from __future__ import annotations

import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


DROP = object()  # respond() result: reset the connection without an answer


def chat_answer(content: str, finish_reason: str = "stop") -> dict:
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}],
    }


class StubServer:
    def __init__(self, respond, delay_s: float = 0.0, trickle_s: float = 0.0):
        self.respond = respond
        self.delay_s = delay_s
        self.trickle_s = trickle_s  # > 0: the body goes out a byte at a time, this long apart (a stalled proxy)
        self.bodies: list[dict] = []
        self.auth: list[str | None] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
            # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and the
            # client's delayed ACK add ~40 ms to every answer.
            disable_nagle_algorithm = True

            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length))
                with stub._lock:
                    stub.bodies.append(body)
                    stub.auth.append(self.headers.get("authorization"))
                    stub.in_flight += 1
                    stub.peak_in_flight = max(stub.peak_in_flight, stub.in_flight)
                try:
                    if stub.delay_s:
                        time.sleep(stub.delay_s)
                    answer = stub.respond(body)
                finally:
                    with stub._lock:
                        stub.in_flight -= 1
                if answer is DROP:
                    # RST instead of FIN: the client sees a connection reset before any response byte.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return
                status, headers, payload = answer
                data = (payload if isinstance(payload, bytes) else payload.encode() if isinstance(payload, str)
                        else json.dumps(payload).encode())
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    for start in range(0, len(data), 1 if stub.trickle_s else len(data) or 1):
                        self.wfile.write(data[start:start + 1] if stub.trickle_s else data)
                        if stub.trickle_s:
                            self.wfile.flush()
                            time.sleep(stub.trickle_s)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

"""A fault-injecting HTTP/1.1 relay on 127.0.0.1 in front of an S3 endpoint (moto's server in the tests).

Requests pass through byte for byte (keep-alive, Content-Length and chunked bodies, Expect: 100-continue), except
those `decide(method, target, attempt)` picks for a fault:
- "slowdown": answer 503 SlowDown (S3's throttling error) without forwarding;
- "reset": reset the connection (RST) before forwarding;
- "reset_after": forward, let the endpoint act on the request, then reset the connection instead of answering:
  the client cannot know whether its request took effect (use for idempotent requests only).
`attempt` counts the requests with the same method, target and Range header, from 1. Every request and its
fate is recorded in `log` as (method, target, attempt, fault or "pass", upstream status or None).
"""
from __future__ import annotations

import socket
import struct
import threading
from collections import Counter
from typing import Callable

SLOWDOWN_BODY = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
                 b"<Message>Please reduce your request rate.</Message><RequestId>fault-proxy</RequestId></Error>")


class _Closed(Exception):
    pass


class _Reader:
    """Buffered reads from a socket: lines and exact byte counts."""

    def __init__(self, sock: socket.socket):
        self.sock, self.buf = sock, b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise _Closed()
        self.buf += chunk

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line + b"\r\n"

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def rest(self) -> bytes:
        out = self.buf
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return out
                out += chunk
        except OSError:
            return out


def _head(reader: _Reader) -> tuple[bytes, list[tuple[str, str]]]:
    first = reader.line()
    headers = []
    while (line := reader.line()) != b"\r\n":
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    return first, headers


def _get(headers, name: str) -> str | None:
    return next((v for k, v in headers if k.lower() == name), None)


def _body(reader: _Reader, headers) -> bytes:
    """The raw body bytes (chunk framing kept) of a message with these headers."""
    if (_get(headers, "transfer-encoding") or "").lower() == "chunked":
        raw = b""
        while True:
            size_line = reader.line()
            raw += size_line
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while (trailer := reader.line()) != b"\r\n":
                    raw += trailer
                return raw + b"\r\n"
            raw += reader.exactly(size + 2)
    return reader.exactly(int(_get(headers, "content-length") or 0))


def _serialise(first: bytes, headers) -> bytes:
    return first + "".join(f"{k}: {v}\r\n" for k, v in headers).encode("latin-1") + b"\r\n"


def _reset(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        sock.close()


class FaultProxy:
    def __init__(self, upstream: tuple[str, int], decide: Callable[[str, str, int], str | None]):
        self.upstream = upstream
        self.decide = decide
        self.log: list[tuple[str, str, int, str, int | None]] = []
        self._attempts: Counter = Counter()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._running = True
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._running = False
        self._listener.close()

    def faults(self) -> Counter:
        return Counter((method, fate) for method, _, _, fate, _ in self.log if fate != "pass")

    def _accept(self) -> None:
        while self._running:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        reader, upstream, up_reader = _Reader(client), None, None
        try:
            while True:
                first, headers = _head(reader)
                method, target, _ = first.decode("latin-1").split(" ", 2)
                if (_get(headers, "expect") or "").lower() == "100-continue":
                    client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                    headers = [(k, v) for k, v in headers if k.lower() != "expect"]
                body = _body(reader, headers)
                key = (method, target, _get(headers, "range"))
                with self._lock:
                    self._attempts[key] += 1
                    attempt = self._attempts[key]
                fault = self.decide(method, target, attempt)
                if fault == "slowdown":
                    self.log.append((method, target, attempt, fault, 503))
                    extra = b"" if method == "HEAD" else SLOWDOWN_BODY
                    client.sendall(b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                                   + f"Content-Length: {len(extra)}\r\n\r\n".encode() + extra)
                    continue
                if fault == "reset":
                    self.log.append((method, target, attempt, fault, None))
                    _reset(client)
                    return
                if upstream is None:
                    upstream = socket.create_connection(self.upstream)
                    up_reader = _Reader(upstream)
                upstream.sendall(_serialise(first, headers) + body)
                status_line, up_headers = _head(up_reader)
                status = int(status_line.split()[1])
                no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
                close = (_get(up_headers, "connection") or "").lower() == "close"
                if no_body:
                    up_body = b""
                elif _get(up_headers, "content-length") is not None or \
                        (_get(up_headers, "transfer-encoding") or "").lower() == "chunked":
                    up_body = _body(up_reader, up_headers)
                else:
                    up_body, close = up_reader.rest(), True  # delimited by the end of the connection
                if fault == "reset_after":
                    self.log.append((method, target, attempt, fault, status))
                    _reset(client)
                    return
                self.log.append((method, target, attempt, "pass", status))
                client.sendall(_serialise(status_line, up_headers) + up_body)
                if close:
                    return
        except (_Closed, OSError):
            pass
        finally:
            client.close()
            if upstream is not None:
                upstream.close()

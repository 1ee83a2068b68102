"""Small hostile HTTP servers on loopback, for the transport tests of the key layer.

Each server runs in a thread of the test process, answers every request the
same hostile way and records what it received:

* :class:`Recorder` answers 200 ``{}`` and keeps each request's headers and body
  (where a cross-origin redirect must never deliver anything);
* :class:`Redirector` answers 307 to another URL (another origin, or
  itself once per request, the way a Vault standby redirects) and otherwise
  forwards to an upstream, so a real OpenBao can stand behind it;
* :class:`Dripper` sends its headers, then one byte of body every ``interval``
  (or drips the headers themselves);
* :class:`Flood` sends a huge body, with ``Content-Length`` or chunked, and
  counts what it managed to write before the client hung up.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Dripper", "Flood", "Recorder", "Redirector", "serve"]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class _Base:
    seen: list[Seen] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def respond(self, handler: BaseHTTPRequestHandler, seen: Seen) -> None:
        raise NotImplementedError


@dataclass
class Recorder(_Base):
    def respond(self, handler: BaseHTTPRequestHandler, seen: Seen) -> None:
        _send(handler, 200, b'{"data": {}}')


@dataclass
class Redirector(_Base):
    """307 to ``target`` (+ the path); with ``target=None``, to itself once per request."""

    target: str | None = None
    upstream: str | None = None
    _redirected: set[tuple[str, str]] = field(default_factory=set)

    def respond(self, handler: BaseHTTPRequestHandler, seen: Seen) -> None:
        key = (seen.method, seen.path)
        if self.target is not None or key not in self._redirected:
            self._redirected.add(key)
            location = (self.target or self.url) + seen.path
            handler.send_response(307)
            handler.send_header("Location", location)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        self._redirected.discard(key)
        assert self.upstream is not None
        request = urllib.request.Request(self.upstream + seen.path, data=seen.body or None,
                                         method=seen.method, headers=seen.headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # loopback only
                status, body = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        _send(handler, status, body)


@dataclass
class Dripper(_Base):
    """One byte every ``interval``: of the body, or (``headers=True``) of the headers."""

    length: int = 40
    interval: float = 0.4
    headers: bool = False

    def respond(self, handler: BaseHTTPRequestHandler, seen: Seen) -> None:
        if self.headers:
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Pad: " + (
                b"a" * self.length) + b"\r\nContent-Length: 2\r\n\r\n{}"
            for byte in head:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                time.sleep(self.interval)
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(self.length))
        handler.end_headers()
        handler.wfile.flush()
        for _ in range(self.length):
            time.sleep(self.interval)
            handler.wfile.write(b" ")
            handler.wfile.flush()


@dataclass
class Flood(_Base):
    size: int = 150 * 1024 * 1024
    chunked: bool = False
    sent: int = 0

    def respond(self, handler: BaseHTTPRequestHandler, seen: Seen) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        if self.chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        else:
            handler.send_header("Content-Length", str(self.size))
        handler.end_headers()
        block = b" " * (256 * 1024)
        left = self.size
        while left > 0:
            piece = block[: min(len(block), left)]
            data = (b"%x\r\n" % len(piece) + piece + b"\r\n") if self.chunked else piece
            handler.wfile.write(data)
            self.sent += len(piece)
            left -= len(piece)
        if self.chunked:
            handler.wfile.write(b"0\r\n\r\n")


def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@contextmanager
def serve(behaviour: Any) -> Iterator[Any]:
    """Run ``behaviour`` (a server above) on a free loopback port until the block ends."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seen = Seen(self.command, self.path, dict(self.headers.items()), body)
            behaviour.seen.append(seen)
            try:
                behaviour.respond(self, seen)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_DELETE = do_LIST = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    behaviour.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield behaviour
    finally:
        server.shutdown()
        server.server_close()

"""The fake's HTTP layer: a threaded loopback server and the handler that reads a request's body
(plain or chunked, drained past the size limit) and writes an :class:`~.wire.Answer` (JSON,
raw bytes, server-sent events, or a dropped connection)."""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from vlmkit_gemini.testing.wire import MIB, Answer, error_body

if TYPE_CHECKING:
    from vlmkit_gemini.testing.fake_server import FakeGemini

__all__ = ["LoopbackServer", "RequestHandler"]


class LoopbackServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, fake: FakeGemini, port: int = 0):
        self.fake = fake
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), RequestHandler)

    def get_request(self):
        sock, addr = super().get_request()
        # Without TCP_NODELAY every request pays a ~40 ms delayed-ACK stall.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.sockets_lock:
            self.open_sockets.add(sock)
        return sock, addr

    def shutdown_request(self, request):
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return  # a client reset or closed its connection (timeouts, pool cleanup, stop())
        self.fake._record_error(f"{client_address}: {exc!r}\n{traceback.format_exc()}")

    def close_open_sockets(self) -> None:
        with self.sockets_lock:
            sockets = list(self.open_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class RequestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-gemini"
    sys_version = ""
    timeout = 120  # idle keep-alive connections eventually release their thread
    server: LoopbackServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet, and never anything that could carry a key

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def _read_body(self, limit: int | None) -> tuple[bytes | None, int]:
        """Read the request body; over ``limit`` it is drained and ``None`` is returned."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            data = b"".join(parts)
            return (None if limit is not None and len(data) > limit else data), len(data)
        length = int(self.headers.get("Content-Length") or 0)
        if limit is not None and length > limit:
            remaining = length
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, MIB))
                if not chunk:
                    break
                remaining -= len(chunk)
            return None, length
        return self.rfile.read(length), length

    def _dispatch(self) -> None:
        fake = self.server.fake
        try:
            answer = fake._handle(self)
        except Exception as exc:  # a bug in the fake: answer 500 and keep it for the fixture
            fake._record_error(f"{self.command} {self.path}: {exc!r}\n{traceback.format_exc()}")
            answer = Answer(500, error_body(500, f"fake_gemini internal error: {exc!r}"))
        self._write(answer)

    def _write(self, answer: Answer) -> None:
        if answer.delay_s > 0:
            time.sleep(answer.delay_s)  # no lock is held here
        if answer.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        try:
            self.send_response(answer.status)
            headers = {k.lower(): (k, v) for k, v in answer.headers.items()}
            if answer.sse is not None:
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self._send_extra_headers(headers)
                self.end_headers()
                for event in answer.sse:
                    payload = b"data: " + json.dumps(event).encode() + b"\r\n\r\n"
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
                self.wfile.write(b"0\r\n\r\n")
                return
            if answer.raw is not None:
                payload = answer.raw
            elif answer.body is None:
                payload = b""
            else:
                payload = json.dumps(answer.body).encode()
            if payload or answer.body is not None:
                self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(payload)))
            self._send_extra_headers(headers)
            self.end_headers()
            if payload and self.command != "HEAD":
                self.wfile.write(payload)
        except OSError:  # the client went away (timeout, stop())
            self.close_connection = True

    def _send_extra_headers(self, headers: Mapping[str, tuple[str, str | None]]) -> None:
        for name, value in headers.values():
            if value is not None:
                self.send_header(name, value)

"""A loopback fake OpenAI-compatible server for tests of the ``openai`` backend (yours too).

It answers ``POST /v1/chat/completions`` like a perfect model: detection prompts get
:func:`vlmkit.testing.true_answer` for the image it received, in the convention the prompt asks
for (``box_2d`` on 0–1000, ``bbox_2d`` in pixels or on 0–1000), so boxes that come back in the
wrong place show a backend or prompt bug. Failures are scripted::

    with FakeOpenAIServer() as server:
        server.fail_next(429, retry_after="2")   # then answers normally
        server.fail_next(503, times=3)
        server.stall_next(seconds=1.0)            # longer than the client's timeout
        Session("openai", model="google/gemma-3-4b-it", base_url=server.url)

Only ever binds 127.0.0.1.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from vlmkit_openai.families import QWEN_MAX_PIXELS

__all__ = ["FakeOpenAIServer", "convention_asked"]


def convention_asked(prompt: str) -> str | None:
    """The box convention a detection prompt asks for, or None for a prompt without boxes."""
    if "box_2d" in prompt and "bbox_2d" not in prompt:
        return "yxyx-1000"
    if "bbox_2d" in prompt:
        return "xyxy-pixels" if "pixel" in prompt else "xyxy-1000"
    return None


class FakeOpenAIServer:
    """The fake server (a context manager). ``requests`` holds every request body it received,
    ``url`` is its ``/v1`` root; ``text`` (when set) is answered instead of the oracle's.
    ``max_pixels`` is the Qwen processor's pixel cap the fake model resizes to; ``latency_s``
    is added to every answer, and ``max_in_flight`` counts the most requests held at once."""

    def __init__(self, *, max_pixels: int = QWEN_MAX_PIXELS) -> None:
        self.max_pixels = max_pixels
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.text: str | None = None
        self.latency_s = 0.0  # added to every answer
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests held at once
        self._script: deque[tuple[int, dict[str, str], float]] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def fail_next(self, status: int, *, times: int = 1, retry_after: str | None = None) -> None:
        """Answer the next ``times`` requests with HTTP ``status`` (and ``Retry-After``)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        with self._lock:
            self._script.extend([(status, headers, 0.0)] * times)

    def stall_next(self, seconds: float, *, times: int = 1) -> None:
        """Wait ``seconds`` before answering the next ``times`` requests (a client timeout)."""
        with self._lock:
            self._script.extend([(200, {}, seconds)] * times)

    def answer(self, body: dict[str, Any]) -> str:
        """The text a perfect model gives for a request body."""
        from PIL import Image

        from vlmkit.testing import true_answer
        from vlmkit_openai.families import smart_resize

        if self.text is not None:
            return self.text
        content = body["messages"][-1]["content"]
        prompt = next(part["text"] for part in content if part["type"] == "text")
        convention = convention_asked(prompt)
        images = [part["image_url"]["url"] for part in content if part["type"] == "image_url"]
        if convention is None or not images:
            return "A grey picture with coloured squares."
        image = Image.open(io.BytesIO(base64.b64decode(images[0].split(",", 1)[1])))
        if convention == "xyxy-pixels":
            # a Qwen2.5-VL server resizes to its 28-px grid; the model answers in those pixels
            image = image.resize(smart_resize(*image.size, max_pixels=self.max_pixels))
        return true_answer(image, convention)

    def _next_step(self) -> tuple[int, dict[str, str], float]:
        with self._lock:
            return self._script.popleft() if self._script else (200, {}, 0.0)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake._lock:
                    fake.requests.append(body)
                    fake.headers.append(dict(self.headers))
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    self._answer(body)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

            def _answer(self, body: dict[str, Any]) -> None:
                status, headers, stall = fake._next_step()
                if stall or fake.latency_s:
                    time.sleep(stall + fake.latency_s)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    status, payload = 404, {"error": {"message": f"no route {self.path}"}}
                elif status != 200:
                    payload = {"error": {"message": f"scripted {status}", "code": status}}
                else:
                    payload = {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion",
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": fake.answer(body)},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 280, "completion_tokens": 40},
                    }
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeOpenAIServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

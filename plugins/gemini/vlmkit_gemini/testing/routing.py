"""Which endpoint a request is for (its op, model, API flavour) and whether its credentials pass,
then the request's way through the fake: :class:`Router`."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from vlmkit_gemini.testing.records import Headers, RecordedRequest
from vlmkit_gemini.testing.synthesis import parse_generation
from vlmkit_gemini.testing.wire import GENERATION_OPS, Answer, error_body

if TYPE_CHECKING:
    from vlmkit_gemini.testing.fake_server import FakeGemini
    from vlmkit_gemini.testing.http_server import RequestHandler

__all__ = ["BATCHES_RE", "DOWNLOAD_RE", "Router", "classify"]

_MODEL_METHODS = {
    "generateContent": "generate",
    "streamGenerateContent": "stream",
    "countTokens": "count_tokens",
    "batchGenerateContent": "batch_create",
}

_MISSING_KEY_MESSAGE = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)

_INVALID_KEY_MESSAGE = "API key not valid. Please pass a valid API key."

_MISSING_TOKEN_MESSAGE = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)

_INVALID_TOKEN_MESSAGE = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


_VERTEX_RE = re.compile(
    r"^/(?P<version>[^/]+)/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/publishers/(?P<publisher>[^/]+)/models/(?P<model>[^/:]+):(?P<method>\w+)$"
)

_EXPRESS_RE = re.compile(
    r"^/(?P<version>[^/]+)/publishers/(?P<publisher>[^/]+)/models/(?P<model>[^/:]+)"
    r":(?P<method>\w+)$"
)

_GEMINI_RE = re.compile(r"^/(?P<version>[^/]+)/models/(?P<model>[^/:]+):(?P<method>\w+)$")

_UPLOAD_RE = re.compile(r"^/upload/(?P<version>[^/]+)/files$")

_FILES_RE = re.compile(r"^/(?P<version>[^/]+)/files(?:/(?P<file_id>[^/:]+))?$")

BATCHES_RE = re.compile(
    r"^/(?P<version>[^/]+)/batches(?:/(?P<batch_id>[^/:]+))?(?::(?P<action>cancel))?$"
)

DOWNLOAD_RE = re.compile(r"^/(?P<version>[^/]+)/files/(?P<file_id>[^/:]+):download$")


def classify(req: RecordedRequest) -> None:
    path, method = req.path, req.method
    for kind, regex in (
        ("vertex", _VERTEX_RE),
        ("express", _EXPRESS_RE),
        ("gemini", _GEMINI_RE),
    ):
        m = regex.match(path)
        if m:
            req.path_kind = kind
            req.api_version = m["version"]
            req.model = m["model"]
            req.op = _MODEL_METHODS.get(m["method"], "unknown") if method == "POST" else "unknown"
            if kind == "vertex":
                req.project, req.location = m["project"], m["location"]
            return
    m = DOWNLOAD_RE.match(path)
    if m:
        req.path_kind, req.api_version = "gemini", m["version"]
        req.op = "files_download" if method == "GET" else "unknown"
        return
    m = BATCHES_RE.match(path)
    if m:
        req.path_kind, req.api_version = "gemini", m["version"]
        if m["action"] == "cancel":
            req.op = "batch_cancel" if method == "POST" else "unknown"
        elif m["batch_id"] is None:
            req.op = "batch_list" if method == "GET" else "unknown"
        else:
            req.op = {"GET": "batch_get", "DELETE": "batch_delete"}.get(method, "unknown")
        return
    m = _UPLOAD_RE.match(path)
    if m and method == "POST":
        req.path_kind, req.api_version = "gemini", m["version"]
        command = (req.headers.get("x-goog-upload-command") or "").lower()
        req.upload_command = command or None
        if "upload_id" in req.query or command not in ("", "start"):
            req.op = "upload_chunk"
            offset = req.headers.get("x-goog-upload-offset")
            req.upload_offset = int(offset) if offset and offset.isdigit() else None
        else:
            req.op = "upload_start"
        return
    m = _FILES_RE.match(path)
    if m:
        req.path_kind, req.api_version = "gemini", m["version"]
        if m["file_id"] is None:
            req.op = "files_list" if method == "GET" else "unknown"
        else:
            req.op = {"GET": "files_get", "DELETE": "files_delete"}.get(method, "unknown")


class Router:
    """Answers one request: records it, checks size, JSON and credentials, then hands it to the
    generation, file or batch endpoints (runs on handler threads; never sleeps under the lock)."""

    def __init__(self, fake: FakeGemini) -> None:
        self.fake = fake

    def handle(self, h: RequestHandler) -> Answer:
        split = urlsplit(h.path)
        path = split.path
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        req = RecordedRequest(
            op="unknown",
            method=h.command,
            path=path,
            query=query,
            headers=Headers(h.headers.items()),
            received_at=time.monotonic(),
        )
        classify(req)
        limit = None if req.op == "upload_chunk" else self.fake.max_request_bytes
        raw, req.body_size = h._read_body(limit)
        with self.fake._lock:
            self.fake.calls[req.op] += 1
            self.fake._requests.append(req)
        if raw is None:
            return self.finish(
                req,
                Answer(
                    400,
                    error_body(
                        400,
                        "Request payload size exceeds the limit: "
                        f"{self.fake.max_request_bytes} bytes.",
                    ),
                ),
            )
        if req.op != "upload_chunk" and raw:
            try:
                req.body = json.loads(raw)
            except ValueError:
                return self.finish(
                    req, Answer(400, error_body(400, "Invalid JSON payload received."))
                )
        answer = self.check_auth(req)
        if answer is not None:
            return self.finish(req, answer)

        if req.op in ("generate", "stream", "count_tokens"):
            try:
                parse_generation(req)
            except (ValueError, TypeError) as exc:  # binascii.Error is a ValueError
                return self.finish(req, Answer(400, error_body(400, f"Invalid request: {exc}")))
        if req.op in GENERATION_OPS:
            with self.fake._lock:
                self.fake.in_flight += 1
                self.fake.max_in_flight = max(self.fake.max_in_flight, self.fake.in_flight)
            try:
                answer = self.finish(req, self.fake._generation.answer(req))
                # Sleep here: outside the lock, inside the in-flight window.
                # Timed from the request's arrival, as a server's latency is: the fake's own
                # work (reading and checking the request) is part of it, not added to it.
                delay, answer.delay_s = answer.delay_s, 0.0
                if answer.raw is None and answer.body is not None and answer.sse is None:
                    answer.raw = json.dumps(answer.body).encode()  # rendered inside the latency
                delay -= time.monotonic() - req.received_at
                if delay > 0:
                    time.sleep(delay)
                return answer
            finally:
                with self.fake._lock:
                    self.fake.in_flight -= 1
        handlers: dict[str, Callable[[], Answer]] = {
            "count_tokens": lambda: self.fake._generation.count_tokens(req),
            "upload_start": lambda: self.fake._file_api.upload_start(req),
            "upload_chunk": lambda: self.fake._file_api.upload_chunk(req, raw),
            "files_get": lambda: self.fake._file_api.get_file(req),
            "files_list": lambda: self.fake._file_api.list_files(req),
            "files_delete": lambda: self.fake._file_api.delete_file(req),
            "batch_create": lambda: self.fake._batch_api.create(req),
            "files_download": lambda: self.fake._file_api.download(req),
            "batch_get": lambda: self.fake._batch_api.get(req),
            "batch_list": lambda: self.fake._batch_api.list_jobs(req),
            "batch_cancel": lambda: self.fake._batch_api.cancel(req),
            "batch_delete": lambda: self.fake._batch_api.delete(req),
        }
        if req.op not in handlers:
            message = f"Method not found: {req.method} {req.path}"
            return self.finish(req, Answer(404, error_body(404, message)))
        return self.finish(req, self.fake._scripted(req, handlers[req.op]))

    def finish(self, req: RecordedRequest, answer: Answer) -> Answer:
        extra = self.fake.latency_s
        if extra > 0:
            answer.delay_s += extra
        req.status = None if answer.drop else answer.status
        return answer

    def check_auth(self, req: RecordedRequest) -> Answer | None:
        if req.op == "upload_chunk":
            return None  # the upload URL itself is the credential; the SDK sends no key
        if req.path_kind == "vertex" and self.fake.require_vertex_auth:
            token = req.bearer_token
            if not token:
                return Answer(401, error_body(401, _MISSING_TOKEN_MESSAGE, "UNAUTHENTICATED"))
            if token in self.fake.invalid_tokens:
                return Answer(
                    401,
                    error_body(
                        401,
                        _INVALID_TOKEN_MESSAGE,
                        "UNAUTHENTICATED",
                        [
                            {
                                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                "reason": "ACCESS_TOKEN_TYPE_UNSUPPORTED",
                                "domain": "googleapis.com",
                            }
                        ],
                    ),
                )
            return None
        if req.path_kind in ("gemini", "express"):
            key = req.api_key or req.query.get("key")
            if not key:
                return Answer(403, error_body(403, _MISSING_KEY_MESSAGE, "PERMISSION_DENIED"))
            if key in self.fake.invalid_keys or (
                self.fake.valid_keys is not None and key not in self.fake.valid_keys
            ):
                service = (
                    "aiplatform.googleapis.com"
                    if req.path_kind == "express"
                    else "generativelanguage.googleapis.com"
                )
                return Answer(
                    400,
                    error_body(
                        400,
                        _INVALID_KEY_MESSAGE,
                        "INVALID_ARGUMENT",
                        [
                            {
                                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                "reason": "API_KEY_INVALID",
                                "domain": "googleapis.com",
                                "metadata": {"service": service},
                            },
                            {
                                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                                "locale": "en-US",
                                "message": _INVALID_KEY_MESSAGE,
                            },
                        ],
                    ),
                )
        return None

"""A loopback fake of the Gemini REST API, for driving the real ``google-genai`` SDK in tests.

Standard library only; see ``docs/reference/gemini-wire.md`` for the wire format it follows.

Endpoints (any ``{v}`` version segment):

* ``POST /{v}/models/{m}:generateContent`` (path_kind ``"gemini"``, needs ``x-goog-api-key``),
  ``POST /{v}/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent``
  (``"vertex"``, needs ``Authorization: Bearer``), ``POST /{v}/publishers/google/models/{m}:...``
  (``"express"``, needs the key); each also ``:streamGenerateContent?alt=sse`` and ``:countTokens``;
* the resumable upload ``POST /upload/{v}/files`` (start, then chunks to the returned
  ``x-goog-upload-url``), ``GET /{v}/files[/{id}]``, ``DELETE /{v}/files/{id}`` and
  ``GET /{v}/files/{id}:download?alt=media`` (generated files only);
* the Batch API: ``POST /{v}/models/{m}:batchGenerateContent`` (inline requests or a JSONL file),
  ``GET /{v}/batches[/{id}]``, ``POST /{v}/batches/{id}:cancel``, ``DELETE /{v}/batches/{id}``.
  A job answers PENDING/RUNNING for ``batch_pending_polls`` gets, then ends in
  ``batch_final_state``, its requests answered like ``generateContent`` (op ``batch_generate``).

Ops (``RecordedRequest.op``, ``fake.calls`` keys, ``add_rule(op=...)``): ``generate``, ``stream``,
``count_tokens``, ``upload_start``, ``upload_chunk``, ``files_get``, ``files_list``,
``files_delete``, ``files_download``, ``batch_create``, ``batch_get``, ``batch_list``,
``batch_cancel``, ``batch_delete``, ``batch_generate``, ``unknown``.

Each model family refuses what the real API refuses (:func:`model_refusal`): both thinking
knobs, ``thinking_level`` on 2.5, ``minimal`` on 3.8 Flash and Pro, per-part or ``ULTRA_HIGH``
media resolution before Gemini 3, and shut-down models (404).

Scripting::

    with FakeGemini() as fake:                        # or the ``fake_gemini`` pytest fixture
        fake.add_rule(prompt_contains="cat", text={"label": "cat"})   # first match wins
        fake.add_rule(model="gemini-2.5-pro", status=503, times=2)    # then falls through
        fake.fail_next(429, retry_delay=1)            # ahead of every other rule
        fake.fail_ratio(429, 0.2, retry_delay=1)      # exactly 1 in 5 generation calls
        fake.latency_s = 0.2                          # answers leave 0.2 s after arrival
        ...
        (req,) = fake.requests_of("generate")
        assert req.generation_config["thinking_config"]["thinking_budget"] == 0

Records (``fake.requests`` snapshot, ``requests_of(*ops)``, ``last_request``) carry the parsed
request: ``headers`` (case-insensitive), ``body``, ``prompt_text``, ``inline_data`` as decoded
``(mime, bytes)``, ``file_data``, ``video_metadata``, ``generation_config`` in snake_case,
``system_instruction``, ``response_schema`` and the answered ``status``.

Token counts are arbitrary but deterministic: 258 tokens per image part (66 with
``MEDIA_RESOLUTION_LOW``, 1032 with ``MEDIA_RESOLUTION_HIGH``) plus ``len(text) // 4`` for the
prompt; ``len(answer) // 4 + 1`` for the candidates; ``thoughtsTokenCount`` (default 32) unless
``thinking_budget`` is 0.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import fnmatch
import hashlib
import http.server
import itertools
import json
import math
import random
import re
import socket
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeGemini", "Headers", "RecordedRequest", "Rule"]

MIB = 1024 * 1024

#: Operations the fake knows. Rules match ``GENERATION_OPS`` unless given ``op=``.
OPS = (
    "generate",
    "stream",
    "count_tokens",
    "upload_start",
    "upload_chunk",
    "files_get",
    "files_list",
    "files_delete",
    "batch_create",
    "batch_get",
    "batch_list",
    "batch_cancel",
    "batch_delete",
    "batch_generate",
    "files_download",
    "unknown",
)
GENERATION_OPS = frozenset({"generate", "stream"})
_MODEL_METHODS = {
    "generateContent": "generate",
    "streamGenerateContent": "stream",
    "countTokens": "count_tokens",
    "batchGenerateContent": "batch_create",
}

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_DEFAULT_MESSAGES = {
    400: "Request contains an invalid argument.",
    401: "Request had invalid authentication credentials.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
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
_VERTEX_429_MESSAGE = (
    "Resource exhausted. Please try again later. Please refer to "
    "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details."
)
_SAFETY_RATINGS_BLOCKED = [
    {
        "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
        "probability": "HIGH",
        "blocked": True,
    },
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
]
_IMAGE_TOKENS = {"MEDIA_RESOLUTION_LOW": 66, "MEDIA_RESOLUTION_HIGH": 1032}
_SECRET_HEADERS = frozenset({"x-goog-api-key", "authorization"})

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
_BATCHES_RE = re.compile(
    r"^/(?P<version>[^/]+)/batches(?:/(?P<batch_id>[^/:]+))?(?::(?P<action>cancel))?$"
)
_BATCH_DONE = frozenset(
    {"BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED"}
)
_DOWNLOAD_RE = re.compile(r"^/(?P<version>[^/]+)/files/(?P<file_id>[^/:]+):download$")
_BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
_FILE_URI_RE = re.compile(r"(?:^|/)files/(?P<file_id>[A-Za-z0-9_-]+)$")


# --------------------------------------------------------------------------------------------
# small helpers


def snake_case(name: str) -> str:
    """``mediaResolution`` → ``media_resolution`` (snake names pass through unchanged)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _camel_case(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


# Keys whose value is user data (JSON Schema, property names): kept verbatim.
_VERBATIM_KEYS = frozenset({"response_json_schema", "parameters_json_schema", "labels"})
_NAMED_MAP_KEYS = frozenset({"properties", "defs", "$defs"})


def normalize_keys(value: Any, _parent: str | None = None) -> Any:
    """Recursively convert dict keys to snake_case, leaving user-named keys alone.

    Keys of a schema's ``properties`` map and everything under ``response_json_schema`` are user
    data and keep their spelling.
    """
    if isinstance(value, list):
        return [normalize_keys(item) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if _parent in _NAMED_MAP_KEYS:
            out[key] = normalize_keys(item)
            continue
        name = snake_case(key)
        out[name] = item if name in _VERBATIM_KEYS else normalize_keys(item, name)
    return out


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """Read a proto-JSON field from a dict under either spelling (``snake_case`` or camel)."""
    if not isinstance(obj, dict):
        return default
    if name in obj:
        return obj[name]
    return obj.get(_camel_case(name), default)


def decode_base64(data: str) -> bytes:
    """Decode URL-safe *or* standard base64, with or without padding (the SDK sends URL-safe)."""
    text = "".join(data.split())
    text += "=" * (-len(text) % 4)
    if "-" in text or "_" in text:
        return base64.urlsafe_b64decode(text)
    return base64.b64decode(text, validate=True)


def format_duration(seconds: float) -> str:
    """Proto3 JSON Duration: ``1`` → ``"1s"``, ``0.5`` → ``"0.500s"``."""
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{seconds:.3f}s"


def _now_rfc3339(offset_s: float = 0.0) -> str:
    moment = _dt.datetime.now(_dt.UTC) + _dt.timedelta(seconds=offset_s)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _to_camel_keys(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {_camel_case(key): value for key, value in mapping.items()}


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only request headers; ``items()`` keeps the names as sent.

    The repr hides the values of ``x-goog-api-key`` and ``Authorization``.
    """

    def __init__(self, pairs: Iterable[tuple[str, str]]):
        self._pairs = list(pairs)
        self._map = {name.lower(): value for name, value in self._pairs}

    def __getitem__(self, name: str) -> str:
        return self._map[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._map

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def items(self):  # type: ignore[override]
        return list(self._pairs)

    def names(self) -> list[str]:
        """Header names exactly as the client spelled them."""
        return [name for name, _ in self._pairs]

    def __repr__(self) -> str:
        shown = {
            name: ("<redacted>" if name.lower() in _SECRET_HEADERS else value)
            for name, value in self._pairs
        }
        return f"Headers({shown!r})"


# --------------------------------------------------------------------------------------------
# what each model family refuses (as the real API answers; see docs/backends/gemini.md)

#: Model-name patterns that answer 404 (shut down), as the Gemini API does for retired models.
SHUT_DOWN_MODELS = ("gemini-1.5-*", "gemini-2.0-*", "gemini-3-pro-preview")
_NO_MINIMAL_LEVEL = ("gemini-3.8-flash*", "gemini-3*-pro*")


def model_refusal(req: RecordedRequest) -> tuple[int, str] | None:
    """``(status, message)`` when ``req``'s model refuses what the request sets, else ``None``.

    Gemini 3.x takes ``thinking_level`` (3.8 Flash and Pro have no ``minimal``), Gemini 2.5
    takes ``thinking_budget``; no model takes both. ``media_resolution`` per part and
    ``ULTRA_HIGH`` are Gemini 3.x only. Shut-down models answer 404.
    """
    model = (req.model or "").lower()
    version = req.api_version or "v1beta"
    if any(fnmatch.fnmatchcase(model, p) for p in SHUT_DOWN_MODELS):
        return 404, (
            f"models/{model} is not found for API version {version}, or is not supported for "
            "generateContent. Call ListModels to see the list of available models and their "
            "supported methods."
        )
    cfg = req.generation_config
    thinking = cfg.get("thinking_config") or {}
    budget, level = thinking.get("thinking_budget"), thinking.get("thinking_level")
    if budget is not None and level is not None:
        return 400, "You can only set only one of thinking budget and thinking level."
    gemini3 = model.startswith(("gemini-3", "gemini-robotics-er-2"))
    if level is not None and model.startswith("gemini-2"):
        return 400, "Thinking level is not supported for this model."
    if str(level).upper() == "MINIMAL" and any(
        fnmatch.fnmatchcase(model, p) for p in _NO_MINIMAL_LEVEL
    ):
        return 400, "Thinking level MINIMAL is not supported for this model."
    if req.part_media_resolution and not gemini3:
        return 400, "Media resolution per part is not supported for this model."
    if "ULTRA_HIGH" in str(cfg.get("media_resolution") or "") and not gemini3:
        return 400, "Media resolution MEDIA_RESOLUTION_ULTRA_HIGH is not supported for this model."
    return None


# --------------------------------------------------------------------------------------------
# records and rules


@dataclass(repr=False)
class RecordedRequest:
    """One request the fake received, parsed. ``status`` is what the fake answered."""

    op: str
    method: str
    path: str
    query: dict[str, str]
    headers: Headers
    path_kind: str | None = None  # "gemini" | "vertex" | "express"
    api_version: str | None = None
    model: str | None = None
    project: str | None = None
    location: str | None = None
    body: Any = None  # parsed JSON (None for upload chunks and bodies over the limit)
    body_size: int = 0
    prompt_text: str = ""
    inline_data: list[tuple[str, bytes]] = field(default_factory=list)
    file_data: list[tuple[str, str]] = field(default_factory=list)
    video_metadata: list[dict[str, Any]] = field(default_factory=list)
    part_media_resolution: list[str] = field(default_factory=list)  # per-part levels sent
    generation_config: dict[str, Any] = field(default_factory=dict)
    system_instruction: str | None = None
    response_schema: Any = None
    safety_settings: list[dict[str, Any]] = field(default_factory=list)
    upload_command: str | None = None
    upload_offset: int | None = None
    received_at: float = 0.0
    status: int | None = None  # None: not answered yet, or the connection was dropped
    rule: Rule | None = None  # the rule that answered, if any

    def __repr__(self) -> str:
        inline = [(mime, f"<{len(data)} bytes>") for mime, data in self.inline_data]
        prompt = self.prompt_text if len(self.prompt_text) <= 80 else self.prompt_text[:77] + "..."
        return (
            f"RecordedRequest(op={self.op!r}, {self.method} {self.path}, status={self.status}, "
            f"model={self.model!r}, prompt_text={prompt!r}, inline_data={inline}, "
            f"file_data={self.file_data})"
        )

    @property
    def api_key(self) -> str | None:
        return self.headers.get("x-goog-api-key")

    @property
    def bearer_token(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None

    @property
    def thinking_budget(self) -> int | None:
        return (self.generation_config.get("thinking_config") or {}).get("thinking_budget")

    @property
    def media_resolution(self) -> str | None:
        return self.generation_config.get("media_resolution")

    @property
    def thinking_level(self) -> str | None:
        return (self.generation_config.get("thinking_config") or {}).get("thinking_level")

    @property
    def service_tier(self) -> str | None:
        body = self.body if isinstance(self.body, dict) else {}
        return _get(body, "service_tier")


TextSpec = str | dict | list | Callable[[RecordedRequest], Any] | None


@dataclass(eq=False)
class Rule:
    """A scripted answer. Build them with :meth:`FakeGemini.add_rule`; ``hits`` counts uses."""

    ops: frozenset[str] = GENERATION_OPS
    model: str | None = None
    prompt_contains: str | re.Pattern[str] | None = None
    path_kind: str | None = None
    match: Callable[[RecordedRequest], bool] | None = None
    text: TextSpec = None
    finish_reason: str = "STOP"
    usage: dict[str, Any] | None = None
    thoughts_tokens: int = 32
    thought_text: str | None = None
    block_reason: str | None = None
    candidate_safety: bool = False
    status: int | None = None
    error_status: str | None = None
    message: str | None = None
    details: list[dict[str, Any]] | None = None
    retry_delay: float | None = None
    delay_s: float = 0.0
    drop_connection: bool = False
    times: int | None = None
    ratio: float | None = None
    seed: int = 0
    body: Any = None
    html_error: str | None = None
    headers: dict[str, str | None] | None = None
    stream_chunks: int = 2
    stream_error_after: int | None = None
    hits: int = 0
    _seen: int = 0
    _phase: float = 0.0

    def __post_init__(self) -> None:
        self._phase = random.Random(self.seed).random()

    def matches(self, req: RecordedRequest) -> bool:
        if req.op not in self.ops:
            return False
        if self.path_kind is not None and req.path_kind != self.path_kind:
            return False
        if self.model is not None and not fnmatch.fnmatchcase(req.model or "", self.model):
            return False
        if isinstance(self.prompt_contains, re.Pattern):
            if not self.prompt_contains.search(req.prompt_text):
                return False
        elif self.prompt_contains is not None and self.prompt_contains not in req.prompt_text:
            return False
        return self.match is None or bool(self.match(req))

    def _take(self) -> bool:
        """Called under the fake's lock for a matching request: does the rule fire this time?"""
        if self.times is not None and self.hits >= self.times:
            return False
        if self.ratio is not None:
            # Exact deterministic fraction: fires on call i when floor(i*ratio + phase) steps.
            i = self._seen
            self._seen += 1
            if math.floor((i + 1) * self.ratio + self._phase) == math.floor(
                i * self.ratio + self._phase
            ):
                return False
        self.hits += 1
        return True

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times

    @property
    def is_error(self) -> bool:
        return self.html_error is not None or (self.status is not None and self.status >= 400)


@dataclass
class _Upload:
    upload_id: str
    version: str
    mime_type: str
    declared_size: int | None
    display_name: str | None
    name: str | None
    data: bytearray = field(default_factory=bytearray)


@dataclass
class _File:
    resource: dict[str, Any]
    data: bytes
    gets: int = 0


@dataclass
class _Batch:
    """One batch job of the Batch API (inline requests)."""

    name: str
    display_name: str
    model: str
    items: list[dict[str, Any]]
    api_version: str
    headers: Headers
    state: str = "BATCH_STATE_PENDING"
    gets: int = 0
    create_time: str = ""
    end_time: str | None = None
    outputs: list[dict[str, Any]] | None = None
    error: dict[str, Any] | None = None
    responses_file: str | None = None  # JSONL input: the answers go to a file, not inline
    jsonl: bool = False

    def keys(self) -> list[Any]:
        """The ``metadata.key`` of each request, in order (``None`` where absent)."""
        return [(item.get("metadata") or {}).get("key") for item in self.items]


class _Answer:
    """What the handler writes back. ``drop`` closes the socket without any response."""

    def __init__(
        self,
        status: int = 200,
        body: Any = None,
        *,
        headers: Mapping[str, str | None] | None = None,
        raw: bytes | None = None,
        content_type: str = "application/json; charset=UTF-8",
        sse: list[Any] | None = None,
        drop: bool = False,
        delay_s: float = 0.0,
    ):
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        self.raw = raw
        self.content_type = content_type
        self.sse = sse
        self.drop = drop
        self.delay_s = delay_s


def error_body(
    status: int,
    message: str | None = None,
    error_status: str | None = None,
    details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Google API error body: ``{"error": {"code", "message", "status", "details"?}}``."""
    err: dict[str, Any] = {
        "code": status,
        "message": message if message is not None else _DEFAULT_MESSAGES.get(status, "Error"),
        "status": error_status or _STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if details:
        err["details"] = details
    return {"error": err}


def retry_info(seconds: float) -> dict[str, Any]:
    """A ``google.rpc.RetryInfo`` error detail."""
    return {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": format_duration(seconds),
    }


# --------------------------------------------------------------------------------------------
# the server


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, fake: FakeGemini, port: int = 0):
        self.fake = fake
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

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


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-gemini"
    sys_version = ""
    timeout = 120  # idle keep-alive connections eventually release their thread
    server: _Server

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
            answer = _Answer(500, error_body(500, f"fake_gemini internal error: {exc!r}"))
        self._write(answer)

    def _write(self, answer: _Answer) -> None:
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


class FakeGemini:
    """A scriptable loopback Gemini/Vertex server. See the module docstring for an example.

    Args:
        max_request_bytes: JSON requests larger than this get 400 "Request payload size exceeds
            the limit" (upload chunks are exempt).
        default_text: answer text when no rule matches (a string or ``callable(request)``).
        processing_gets: a video file answers ``PROCESSING`` until it has been read this many
            times; the N-th ``files.get`` answers ``ACTIVE`` (0: active at once).
        processing_result: the state a processed video ends in (``"ACTIVE"`` or ``"FAILED"``).
        require_vertex_auth: Vertex project/location paths need ``Authorization: Bearer``.
        port: the loopback port to listen on (0: any free port; see :attr:`base_url`).
    """

    def __init__(
        self,
        *,
        max_request_bytes: int = 20 * MIB,
        default_text: str | Callable[[RecordedRequest], str] = "ok",
        processing_gets: int = 1,
        processing_result: str = "ACTIVE",
        require_vertex_auth: bool = True,
        port: int = 0,
    ):
        self.requested_port = port
        self.max_request_bytes = max_request_bytes
        self.default_text = default_text
        self.processing_gets = processing_gets
        self.processing_result = processing_result
        self.require_vertex_auth = require_vertex_auth
        self.latency_s = 0.0
        #: API keys answered with 400 API_KEY_INVALID.
        self.invalid_keys: set[str] = set()
        #: If not None, only these API keys are accepted (others: API_KEY_INVALID).
        self.valid_keys: set[str] | None = None
        #: Bearer tokens answered with 401 UNAUTHENTICATED.
        self.invalid_tokens: set[str] = set()
        #: Batch API: ``batches.get`` answers PENDING/RUNNING this many times before the job ends.
        self.batch_pending_polls = 1
        #: Batch API: the state a job ends in (``BATCH_STATE_SUCCEEDED``, ``..._EXPIRED``, ...).
        self.batch_final_state = "BATCH_STATE_SUCCEEDED"
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(1)
        self._init_state()

    def _init_state(self) -> None:
        self._rules: list[Rule] = []
        self._requests: list[RecordedRequest] = []
        self._errors: list[str] = []
        self._files: dict[str, _File] = {}
        self._uploads: dict[str, _Upload] = {}
        self._batches: dict[str, _Batch] = {}
        self.calls: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0

    # ---- lifecycle

    def start(self) -> FakeGemini:
        if self._server is not None:
            return self
        self._server = _Server(self, self.requested_port)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-gemini:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_open_sockets()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeGemini:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeGemini is not running; call start()")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Forget rules, requests, files, uploads, counters and errors (keys/settings stay)."""
        with self._lock:
            self._init_state()
        self.latency_s = 0.0

    # ---- scripting

    def add_rule(
        self,
        *,
        op: str | Iterable[str] | None = None,
        model: str | None = None,
        prompt_contains: str | re.Pattern[str] | None = None,
        path_kind: str | None = None,
        match: Callable[[RecordedRequest], bool] | None = None,
        text: TextSpec = None,
        finish_reason: str = "STOP",
        usage: dict[str, Any] | None = None,
        thoughts_tokens: int = 32,
        thought_text: str | None = None,
        block_reason: str | None = None,
        candidate_safety: bool = False,
        status: int | None = None,
        error_status: str | None = None,
        message: str | None = None,
        details: list[dict[str, Any]] | None = None,
        retry_delay: float | None = None,
        delay_s: float = 0.0,
        drop_connection: bool = False,
        times: int | None = None,
        ratio: float | None = None,
        seed: int = 0,
        body: Any = None,
        html_error: str | None = None,
        headers: dict[str, str | None] | None = None,
        stream_chunks: int = 2,
        stream_error_after: int | None = None,
        first: bool = False,
    ) -> Rule:
        """Script an answer; the first matching, non-exhausted rule wins.

        Matchers (all optional, all must hold): ``op`` (default generate + stream; also
        ``count_tokens``, ``upload_start``, ``upload_chunk``, ``files_get``, ``files_list``,
        ``files_delete``), ``model`` (exact or glob), ``prompt_contains`` (substring or compiled
        regex of the joined prompt text), ``path_kind`` and ``match(request) -> bool``.

        Answers: ``text`` (str, JSON-able dict/list, or ``callable(request)``), with
        ``finish_reason``, ``usage`` overrides (snake or camel keys), ``thoughts_tokens``;
        ``block_reason`` (prompt blocked, no candidates); ``candidate_safety`` (finishReason SAFETY,
        no content); ``status``/``error_status``/``message``/``details`` for an error body,
        ``retry_delay`` seconds for a RetryInfo detail (implies 429); ``html_error`` for a non-JSON
        error page (default status 502); ``body`` (JSON returned verbatim; a list is streamed as SSE
        chunks); ``headers`` extra response headers (None removes a default one);
        ``drop_connection``; ``delay_s`` latency. ``times`` limits uses (None: forever); ``ratio``
        fires on an exact deterministic fraction of matching calls (phase from ``seed``).
        ``stream_chunks`` splits streamed text; ``stream_error_after=N`` sends N chunks and then
        the error object inside the 200 stream. ``first=True`` puts the rule ahead of the others.
        """
        if isinstance(op, str):
            ops = frozenset({op})
        elif op is None:
            ops = GENERATION_OPS
        else:
            ops = frozenset(op)
        unknown = ops - set(OPS)
        if unknown:
            raise ValueError(f"unknown op(s) {sorted(unknown)}; known: {OPS}")
        if path_kind not in (None, "gemini", "vertex", "express"):
            raise ValueError(f"path_kind must be gemini, vertex or express, not {path_kind!r}")
        if retry_delay is not None and status is None:
            status = 429
        if html_error is not None and status is None:
            status = 502
        if ratio is not None and not 0.0 <= ratio <= 1.0:
            raise ValueError(f"ratio must be within [0, 1], not {ratio}")
        rule = Rule(
            ops=ops,
            model=model.removeprefix("models/") if model else None,
            prompt_contains=prompt_contains,
            path_kind=path_kind,
            match=match,
            text=text,
            finish_reason=finish_reason,
            usage=usage,
            thoughts_tokens=thoughts_tokens,
            thought_text=thought_text,
            block_reason=block_reason,
            candidate_safety=candidate_safety,
            status=status,
            error_status=error_status,
            message=message,
            details=details,
            retry_delay=retry_delay,
            delay_s=delay_s,
            drop_connection=drop_connection,
            times=times,
            ratio=ratio,
            seed=seed,
            body=body,
            html_error=html_error,
            headers=headers,
            stream_chunks=stream_chunks,
            stream_error_after=stream_error_after,
        )
        with self._lock:
            if first:
                self._rules.insert(0, rule)
            else:
                self._rules.append(rule)
        return rule

    def fail_next(
        self,
        status: int,
        times: int = 1,
        retry_delay: float | None = None,
        *,
        message: str | None = None,
        op: str | Iterable[str] | None = None,
        **options: Any,
    ) -> Rule:
        """Make the next ``times`` generation calls fail with ``status`` (ahead of other rules)."""
        return self.add_rule(
            status=status,
            times=times,
            retry_delay=retry_delay,
            message=message,
            op=op,
            first=True,
            **options,
        )

    def fail_ratio(
        self,
        status: int,
        ratio: float,
        seed: int = 0,
        retry_delay: float | None = None,
        **options: Any,
    ) -> Rule:
        """Fail an exact, deterministic fraction of generation calls (e.g. 0.2 → 1 in 5)."""
        return self.add_rule(
            status=status, ratio=ratio, seed=seed, retry_delay=retry_delay, first=True, **options
        )

    def clear_rules(self) -> None:
        with self._lock:
            self._rules.clear()

    # ---- files

    def add_file(
        self,
        data: bytes,
        mime_type: str,
        *,
        state: str | None = None,
        display_name: str | None = None,
        version: str = "v1beta",
    ) -> dict[str, Any]:
        """Create a file as if uploaded (``state`` defaults as for an upload); returns it."""
        with self._lock:
            return dict(self._create_file(data, mime_type, display_name, None, version, state))

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        """``{"files/<id>": resource}`` for the files that exist now (copies)."""
        with self._lock:
            return {name: dict(f.resource) for name, f in self._files.items()}

    def file_bytes(self, name: str) -> bytes:
        with self._lock:
            return self._files[name if name.startswith("files/") else f"files/{name}"].data

    def set_file_state(self, name: str, state: str) -> None:
        with self._lock:
            f = self._files[name if name.startswith("files/") else f"files/{name}"]
            f.resource["state"] = state
            f.resource["updateTime"] = _now_rfc3339()

    # ---- inspection

    @property
    def batches(self) -> dict[str, dict[str, Any]]:
        """Snapshot of the batch jobs: name → display_name, model, state, keys, requests."""
        with self._lock:
            return {
                name: {
                    "display_name": b.display_name,
                    "model": b.model,
                    "state": b.state,
                    "keys": b.keys(),
                    "requests": len(b.items),
                }
                for name, b in self._batches.items()
            }

    def set_batch_state(self, name: str, state: str, error: str | None = None) -> None:
        """Force a batch job into ``state`` (``BATCH_STATE_EXPIRED``, ...) with an error message."""
        with self._lock:
            batch = self._batches[name]
            batch.state = state
            if error is not None:
                batch.error = {"code": 3, "message": error}
            if state in _BATCH_DONE:
                batch.end_time = _now_rfc3339()

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot (copy) of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_of(self, *ops: str) -> list[RecordedRequest]:
        """Requests of the given ops (default: generate and stream)."""
        wanted = set(ops) if ops else GENERATION_OPS
        with self._lock:
            return [r for r in self._requests if r.op in wanted]

    @property
    def last_request(self) -> RecordedRequest | None:
        with self._lock:
            return self._requests[-1] if self._requests else None

    @property
    def errors(self) -> list[str]:
        """Internal errors of the fake itself (bugs); the pytest fixture fails on any."""
        with self._lock:
            return list(self._errors)

    def _record_error(self, text: str) -> None:
        with self._lock:
            self._errors.append(text)

    # ---- request handling (runs on handler threads; never sleeps under the lock)

    def _handle(self, h: _Handler) -> _Answer:
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
        self._classify(req)
        limit = None if req.op == "upload_chunk" else self.max_request_bytes
        raw, req.body_size = h._read_body(limit)
        with self._lock:
            self.calls[req.op] += 1
            self._requests.append(req)
        if raw is None:
            return self._finish(
                req,
                _Answer(
                    400,
                    error_body(
                        400,
                        f"Request payload size exceeds the limit: {self.max_request_bytes} bytes.",
                    ),
                ),
            )
        if req.op != "upload_chunk" and raw:
            try:
                req.body = json.loads(raw)
            except ValueError:
                return self._finish(
                    req, _Answer(400, error_body(400, "Invalid JSON payload received."))
                )
        answer = self._check_auth(req)
        if answer is not None:
            return self._finish(req, answer)

        if req.op in ("generate", "stream", "count_tokens"):
            try:
                self._parse_generation(req)
            except (ValueError, TypeError) as exc:  # binascii.Error is a ValueError
                return self._finish(req, _Answer(400, error_body(400, f"Invalid request: {exc}")))
        if req.op in GENERATION_OPS:
            with self._lock:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                answer = self._finish(req, self._answer_generation(req))
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
                with self._lock:
                    self.in_flight -= 1
        handlers: dict[str, Callable[[], _Answer]] = {
            "count_tokens": lambda: self._answer_count_tokens(req),
            "upload_start": lambda: self._answer_upload_start(req),
            "upload_chunk": lambda: self._answer_upload_chunk(req, raw),
            "files_get": lambda: self._answer_files_get(req),
            "files_list": lambda: self._answer_files_list(req),
            "files_delete": lambda: self._answer_files_delete(req),
            "batch_create": lambda: self._answer_batch_create(req),
            "files_download": lambda: self._answer_files_download(req),
            "batch_get": lambda: self._answer_batch_get(req),
            "batch_list": lambda: self._answer_batch_list(req),
            "batch_cancel": lambda: self._answer_batch_cancel(req),
            "batch_delete": lambda: self._answer_batch_delete(req),
        }
        if req.op not in handlers:
            message = f"Method not found: {req.method} {req.path}"
            return self._finish(req, _Answer(404, error_body(404, message)))
        return self._finish(req, self._scripted(req, handlers[req.op]))

    def _finish(self, req: RecordedRequest, answer: _Answer) -> _Answer:
        extra = self.latency_s
        if extra > 0:
            answer.delay_s += extra
        req.status = None if answer.drop else answer.status
        return answer

    def _classify(self, req: RecordedRequest) -> None:
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
                req.op = (
                    _MODEL_METHODS.get(m["method"], "unknown") if method == "POST" else "unknown"
                )
                if kind == "vertex":
                    req.project, req.location = m["project"], m["location"]
                return
        m = _DOWNLOAD_RE.match(path)
        if m:
            req.path_kind, req.api_version = "gemini", m["version"]
            req.op = "files_download" if method == "GET" else "unknown"
            return
        m = _BATCHES_RE.match(path)
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

    def _check_auth(self, req: RecordedRequest) -> _Answer | None:
        if req.op == "upload_chunk":
            return None  # the upload URL itself is the credential; the SDK sends no key
        if req.path_kind == "vertex" and self.require_vertex_auth:
            token = req.bearer_token
            if not token:
                return _Answer(401, error_body(401, _MISSING_TOKEN_MESSAGE, "UNAUTHENTICATED"))
            if token in self.invalid_tokens:
                return _Answer(
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
                return _Answer(403, error_body(403, _MISSING_KEY_MESSAGE, "PERMISSION_DENIED"))
            if key in self.invalid_keys or (
                self.valid_keys is not None and key not in self.valid_keys
            ):
                service = (
                    "aiplatform.googleapis.com"
                    if req.path_kind == "express"
                    else "generativelanguage.googleapis.com"
                )
                return _Answer(
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

    # ---- generation

    def _parse_generation(self, req: RecordedRequest) -> None:
        body = req.body if isinstance(req.body, dict) else {}
        texts: list[str] = []
        for content in _get(body, "contents") or []:
            for part in _get(content, "parts") or []:
                if _get(part, "text") is not None and not _get(part, "thought"):
                    texts.append(_get(part, "text"))
                inline = _get(part, "inline_data")
                if inline is not None:
                    try:
                        data = decode_base64(_get(inline, "data") or "")
                    except ValueError:
                        raise ValueError(
                            "Invalid value at 'inline_data.data' (TYPE_BYTES), "
                            "Base64 decoding failed"
                        ) from None
                    req.inline_data.append((_get(inline, "mime_type") or "", data))
                file_data = _get(part, "file_data")
                if file_data is not None:
                    req.file_data.append(
                        (_get(file_data, "mime_type") or "", _get(file_data, "file_uri") or "")
                    )
                video = _get(part, "video_metadata")
                if video is not None:
                    req.video_metadata.append(normalize_keys(video))
                resolution = _get(part, "media_resolution")
                if resolution is not None:
                    level = _get(resolution, "level") if isinstance(resolution, dict) else None
                    req.part_media_resolution.append(str(level or resolution))
        req.prompt_text = "\n".join(texts)
        system = _get(body, "system_instruction")
        if isinstance(system, dict):
            req.system_instruction = "\n".join(
                _get(p, "text") for p in _get(system, "parts") or [] if _get(p, "text") is not None
            )
        elif isinstance(system, str):
            req.system_instruction = system
        req.generation_config = normalize_keys(_get(body, "generation_config") or {})
        cfg = req.generation_config
        req.response_schema = cfg.get("response_schema", cfg.get("response_json_schema"))
        req.safety_settings = normalize_keys(_get(body, "safety_settings") or [])

    def _validate_generation(self, req: RecordedRequest) -> _Answer | None:
        if not _get(req.body, "contents"):
            return _Answer(
                400,
                error_body(400, "* GenerateContentRequest.contents: contents is not specified\n"),
            )
        refusal = model_refusal(req)
        if refusal is not None:
            status, message = refusal
            return _Answer(status, error_body(status, message))
        for _mime, uri in req.file_data:
            if uri.startswith("gs://") or ("/files/" not in uri and not uri.startswith("files/")):
                continue
            m = _FILE_URI_RE.search(urlsplit(uri).path if "://" in uri else uri)
            file_id = m["file_id"] if m else uri
            with self._lock:
                f = self._files.get(f"files/{file_id}")
                state = f.resource["state"] if f else None
            if f is None:
                return _Answer(
                    403,
                    error_body(
                        403,
                        f"You do not have permission to access the File {file_id} or it may not "
                        "exist.",
                        "PERMISSION_DENIED",
                    ),
                )
            if state != "ACTIVE":
                return _Answer(
                    400,
                    error_body(
                        400,
                        f"The File {file_id} is not in an ACTIVE state and usage is not allowed.",
                        "FAILED_PRECONDITION",
                    ),
                )
        return None

    def _pick_rule(self, req: RecordedRequest) -> Rule | None:
        with self._lock:
            rules = list(self._rules)
        candidates = [r for r in rules if not r.exhausted and r.matches(req)]  # no lock: user code
        with self._lock:
            for rule in candidates:
                if rule._take():
                    req.rule = rule
                    return rule
        return None

    def _scripted(self, req: RecordedRequest, default: Callable[[], _Answer]) -> _Answer:
        """Answer a non-generation op: a matching rule's error, drop or body, else ``default()``.

        A rule with only ``headers``/``delay_s`` decorates the default answer.
        """
        rule = self._pick_rule(req)
        if rule is None:
            return default()
        if rule.drop_connection:
            return _Answer(drop=True, delay_s=rule.delay_s)
        if rule.is_error:
            answer = self._error_answer(req, rule)
            if req.op == "upload_chunk":  # so the SDK raises at once instead of its retry loop
                answer.headers = {"x-goog-upload-status": "final", **answer.headers}
        elif rule.body is not None:
            answer = _Answer(rule.status or 200, rule.body, headers=rule.headers)
        else:
            answer = default()
            answer.headers.update(rule.headers or {})
        answer.delay_s += rule.delay_s
        return answer

    def _error_answer(self, req: RecordedRequest, rule: Rule) -> _Answer:
        status = rule.status or 502
        if rule.html_error is not None:
            return _Answer(
                status,
                raw=rule.html_error.encode(),
                content_type="text/html; charset=UTF-8",
                headers=rule.headers,
            )
        details = list(rule.details) if rule.details is not None else []
        message = rule.message
        if message is None and status == 429 and req.path_kind in ("vertex", "express"):
            message = _VERTEX_429_MESSAGE
        if rule.details is None and status == 429 and req.path_kind == "gemini":
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": "generativelanguage.googleapis.com/"
                            "generate_content_free_tier_requests",
                            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                            "quotaDimensions": {"location": "global", "model": req.model or ""},
                            "quotaValue": "10",
                        }
                    ],
                }
            )
        if rule.retry_delay is not None:
            details.append(retry_info(rule.retry_delay))
        return _Answer(
            status,
            error_body(status, message, rule.error_status, details),
            headers=rule.headers,
        )

    def _answer_generation(self, req: RecordedRequest) -> _Answer:
        invalid = self._validate_generation(req)
        if invalid is not None:
            return invalid
        rule = self._pick_rule(req)
        delay = rule.delay_s if rule else 0.0
        stream = req.op == "stream"
        if rule is not None and rule.drop_connection:
            return _Answer(drop=True, delay_s=delay)
        if rule is not None and rule.is_error:
            err = self._error_answer(req, rule)
            if stream and rule.stream_error_after is not None and rule.html_error is None:
                text = self._text_for(req, rule)
                chunks = self._success_chunks(req, rule, text)[: rule.stream_error_after]
                for chunk in chunks:
                    chunk.pop("usageMetadata", None)
                    for cand in chunk.get("candidates", []):
                        cand.pop("finishReason", None)
                return _Answer(200, sse=[*chunks, err.body], headers=rule.headers, delay_s=delay)
            err.delay_s = delay
            return err
        if rule is not None and rule.body is not None:
            body = rule.body
            if stream:
                return _Answer(
                    rule.status or 200,
                    sse=list(body) if isinstance(body, list) else [body],
                    headers=rule.headers,
                    delay_s=delay,
                )
            return _Answer(rule.status or 200, body, headers=rule.headers, delay_s=delay)
        headers = rule.headers if rule else None
        if rule is not None and rule.block_reason is not None:
            prompt = self._prompt_tokens(req)
            body = {
                "promptFeedback": {
                    "blockReason": rule.block_reason,
                    "safetyRatings": _SAFETY_RATINGS_BLOCKED,
                },
                "usageMetadata": {"promptTokenCount": prompt, "totalTokenCount": prompt},
                **self._envelope(req),
            }
            return _Answer(
                200, sse=[body] if stream else None, body=body, headers=headers, delay_s=delay
            )
        text = self._text_for(req, rule)
        chunks = self._success_chunks(req, rule, text)
        if stream:
            return _Answer(200, sse=chunks, headers=headers, delay_s=delay)
        return _Answer(200, chunks[0], headers=headers, delay_s=delay)

    def _text_for(self, req: RecordedRequest, rule: Rule | None) -> str:
        spec: Any = rule.text if rule is not None and rule.text is not None else self.default_text
        if rule is not None and rule.candidate_safety:
            return ""
        if callable(spec):
            spec = spec(req)
        if isinstance(spec, dict | list):
            return json.dumps(spec)
        return "" if spec is None else str(spec)

    def _thinking(self, req: RecordedRequest) -> bool:
        return req.thinking_budget != 0

    def _prompt_tokens(self, req: RecordedRequest) -> int:
        per_image = _IMAGE_TOKENS.get(req.media_resolution or "", 258)
        tokens = len(req.prompt_text) // 4 + len(req.system_instruction or "") // 4
        for mime, _ in [*req.inline_data, *req.file_data]:
            if mime.startswith("video/"):
                tokens += 10 * (per_image + 5)  # ten seconds of video at 1 fps
            elif mime.startswith("audio/"):
                tokens += 320
            else:
                tokens += per_image
        return tokens

    def _usage(self, req: RecordedRequest, rule: Rule | None, text: str) -> dict[str, Any]:
        prompt = self._prompt_tokens(req)
        usage: dict[str, Any] = {"promptTokenCount": prompt}
        candidates = len(text) // 4 + 1 if text else 0
        if candidates:
            usage["candidatesTokenCount"] = candidates
        thoughts = 0
        if self._thinking(req):
            thoughts = rule.thoughts_tokens if rule is not None else 32
            usage["thoughtsTokenCount"] = thoughts
        usage["totalTokenCount"] = prompt + candidates + thoughts
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
        if req.path_kind in ("vertex", "express"):
            usage["trafficType"] = "ON_DEMAND"
        if rule is not None and rule.usage:
            usage.update(_to_camel_keys(rule.usage))
        return usage

    def _envelope(self, req: RecordedRequest) -> dict[str, Any]:
        env: dict[str, Any] = {
            "modelVersion": req.model or "",
            "responseId": base64.urlsafe_b64encode(uuid.uuid4().bytes[:12]).decode(),
        }
        if req.path_kind in ("vertex", "express"):
            env["createTime"] = _now_rfc3339()
        return env

    def _success_chunks(self, req: RecordedRequest, rule: Rule | None, text: str) -> list[dict]:
        """The answer as SSE chunks; the last one carries finishReason and the full usage."""
        finish = "SAFETY" if rule is not None and rule.candidate_safety else "STOP"
        if rule is not None and not rule.candidate_safety:
            finish = rule.finish_reason
        n = max(1, rule.stream_chunks if rule is not None else 2)
        if req.op != "stream" or not text:
            pieces = [text]
        else:
            step = max(1, math.ceil(len(text) / n))
            pieces = [text[i : i + step] for i in range(0, len(text), step)]
        envelope = self._envelope(req)
        thinking = self._thinking(req)
        include_thoughts = bool(
            (req.generation_config.get("thinking_config") or {}).get("include_thoughts")
        )
        usage = self._usage(req, rule, text)
        chunks = []
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            parts: list[dict[str, Any]] = []
            if i == 0 and thinking and (include_thoughts or (rule and rule.thought_text)):
                thought = rule.thought_text if rule and rule.thought_text else "(fake thoughts)"
                parts.append({"text": thought, "thought": True})
            if piece:
                parts.append({"text": piece})
            candidate: dict[str, Any] = {"index": 0}
            if rule is not None and rule.candidate_safety:
                candidate["safetyRatings"] = _SAFETY_RATINGS_BLOCKED
            else:
                candidate["content"] = {"role": "model", **({"parts": parts} if parts else {})}
            if last:
                candidate["finishReason"] = finish
            chunk: dict[str, Any] = {"candidates": [candidate]}
            chunk["usageMetadata"] = (
                usage
                if last
                else {
                    "promptTokenCount": usage["promptTokenCount"],
                    "totalTokenCount": usage["promptTokenCount"],
                }
            )
            chunk.update(envelope)
            chunks.append(chunk)
        return chunks

    def _answer_count_tokens(self, req: RecordedRequest) -> _Answer:
        # Vertex/Gemini both accept {"contents": [...]}; the Gemini API also a wrapped request.
        wrapped = _get(req.body, "generate_content_request")
        if isinstance(wrapped, dict) and not _get(req.body, "contents"):
            inner = RecordedRequest(
                op="count_tokens", method="POST", path=req.path, query={}, headers=req.headers
            )
            inner.body = wrapped
            self._parse_generation(inner)
            req.prompt_text, req.inline_data = inner.prompt_text, inner.inline_data
            req.file_data, req.generation_config = inner.file_data, inner.generation_config
        total = self._prompt_tokens(req)
        return _Answer(
            200,
            {
                "totalTokens": total,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}],
            },
        )

    # ---- files

    def _create_file(
        self,
        data: bytes,
        mime_type: str,
        display_name: str | None,
        name: str | None,
        version: str,
        state: str | None = None,
    ) -> dict[str, Any]:
        """Called with the lock held."""
        file_id = (name or "").removeprefix("files/") or uuid.uuid4().hex[:12]
        if state is None:
            processing = mime_type.startswith("video/") and self.processing_gets > 0
            state = "PROCESSING" if processing else "ACTIVE"
        now = _now_rfc3339()
        resource: dict[str, Any] = {
            "name": f"files/{file_id}",
            "mimeType": mime_type,
            "sizeBytes": str(len(data)),
            "createTime": now,
            "updateTime": now,
            "expirationTime": _now_rfc3339(48 * 3600),
            "sha256Hash": base64.b64encode(hashlib.sha256(data).digest()).decode(),
            "uri": f"{self.base_url}/{version}/files/{file_id}",
            "state": state,
            "source": "UPLOADED",
        }
        if display_name:
            resource["displayName"] = display_name
        self._files[resource["name"]] = _File(resource=resource, data=data)
        return resource

    def _answer_upload_start(self, req: RecordedRequest) -> _Answer:
        protocol = (req.headers.get("x-goog-upload-protocol") or "").lower()
        if protocol != "resumable":
            return _Answer(400, error_body(400, "Upload protocol must be 'resumable'."))
        file_meta = _get(req.body, "file") or {}
        mime = req.headers.get("x-goog-upload-header-content-type") or _get(file_meta, "mime_type")
        if not mime:
            return _Answer(400, error_body(400, "Upload has no mime type."))
        size = req.headers.get("x-goog-upload-header-content-length") or _get(
            file_meta, "size_bytes"
        )
        upload = _Upload(
            upload_id=uuid.uuid4().hex,
            version=req.api_version or "v1beta",
            mime_type=mime,
            declared_size=int(size) if size is not None and str(size).isdigit() else None,
            display_name=_get(file_meta, "display_name"),
            name=_get(file_meta, "name"),
        )
        with self._lock:
            self._uploads[upload.upload_id] = upload
        url = (
            f"{self.base_url}/upload/{upload.version}/files"
            f"?upload_id={upload.upload_id}&upload_protocol=resumable"
        )
        return _Answer(
            200,
            headers={
                "x-goog-upload-url": url,
                "x-goog-upload-control-url": url,
                "x-goog-upload-status": "active",
                "x-goog-upload-chunk-granularity": str(8 * MIB),
            },
        )

    def _answer_upload_chunk(self, req: RecordedRequest, chunk: bytes) -> _Answer:
        def fail(status: int, message: str) -> _Answer:
            return _Answer(
                status, error_body(status, message), headers={"x-goog-upload-status": "final"}
            )

        upload_id = req.query.get("upload_id", "")
        command = req.upload_command or ""
        with self._lock:
            upload = self._uploads.get(upload_id)
        if upload is None:
            return fail(404, f"Unknown or expired upload session {upload_id!r}.")
        commands = {c.strip() for c in command.split(",")}
        if "cancel" in commands:
            with self._lock:
                self._uploads.pop(upload_id, None)
            return _Answer(200, headers={"x-goog-upload-status": "cancelled"})
        if "query" in commands:
            return _Answer(
                200,
                headers={
                    "x-goog-upload-status": "active",
                    "x-goog-upload-size-received": str(len(upload.data)),
                },
            )
        if "upload" not in commands:
            return fail(400, f"Unsupported X-Goog-Upload-Command {command!r}.")
        with self._lock:
            if req.upload_offset != len(upload.data):
                return fail(
                    400,
                    f"Upload offset {req.upload_offset} does not match the "
                    f"{len(upload.data)} bytes received so far.",
                )
            upload.data += chunk
            if "finalize" not in commands:
                return _Answer(
                    200,
                    headers={
                        "x-goog-upload-status": "active",
                        "x-goog-upload-size-received": str(len(upload.data)),
                    },
                )
            self._uploads.pop(upload_id, None)
            if upload.declared_size is not None and upload.declared_size != len(upload.data):
                return fail(
                    400,
                    f"Upload size {len(upload.data)} does not match the declared "
                    f"{upload.declared_size} bytes.",
                )
            resource = self._create_file(
                bytes(upload.data),
                upload.mime_type,
                upload.display_name,
                upload.name,
                upload.version,
            )
            return _Answer(200, {"file": dict(resource)}, headers={"x-goog-upload-status": "final"})

    def _lookup_file(self, req: RecordedRequest) -> tuple[str, _File | None]:
        file_id = req.path.rsplit("/", 1)[-1]
        with self._lock:
            return file_id, self._files.get(f"files/{file_id}")

    @staticmethod
    def _no_file(file_id: str) -> _Answer:
        return _Answer(
            403,
            error_body(
                403,
                f"You do not have permission to access the File {file_id} or it may not exist.",
                "PERMISSION_DENIED",
            ),
        )

    def _answer_files_get(self, req: RecordedRequest) -> _Answer:
        file_id, f = self._lookup_file(req)
        if f is None:
            return self._no_file(file_id)
        with self._lock:
            f.gets += 1
            res = f.resource
            if res["state"] == "PROCESSING" and f.gets >= self.processing_gets:
                res["state"] = self.processing_result
                res["updateTime"] = _now_rfc3339()
                if self.processing_result == "FAILED":
                    res["error"] = {"code": 400, "message": "File processing failed."}
            return _Answer(200, dict(res))

    def _answer_files_list(self, req: RecordedRequest) -> _Answer:
        size = int(req.query.get("pageSize") or req.query.get("page_size") or 10)
        start = int(req.query.get("pageToken") or req.query.get("page_token") or 0)
        with self._lock:
            resources = [dict(f.resource) for f in self._files.values()]
        page = resources[start : start + size]
        body: dict[str, Any] = {"files": page} if page else {}
        if start + size < len(resources):
            body["nextPageToken"] = str(start + size)
        return _Answer(200, body)

    def _answer_files_delete(self, req: RecordedRequest) -> _Answer:
        file_id, f = self._lookup_file(req)
        if f is None:
            return self._no_file(file_id)
        with self._lock:
            self._files.pop(f"files/{file_id}", None)
        return _Answer(200, {})

    # ---- Batch API (inline requests; shapes of google-genai's batches module)

    def _answer_batch_create(self, req: RecordedRequest) -> _Answer:
        batch = _get(req.body, "batch") if isinstance(req.body, dict) else None
        source = _get(batch, "input_config") or {}
        jsonl = _get(source, "file_name") is not None
        if jsonl:
            with self._lock:
                found = self._files.get(str(_get(source, "file_name")))
            if found is None:
                return _Answer(404, error_body(404, "Requested entity was not found.", "NOT_FOUND"))
            try:  # each line: {"key": ..., "request": {GenerateContentRequest}}
                lines = [json.loads(x) for x in found.data.decode().splitlines() if x.strip()]
                items = [{"request": x["request"], "metadata": {"key": x["key"]}} for x in lines]
            except (ValueError, KeyError, TypeError) as exc:
                return _Answer(400, error_body(400, f"Invalid JSONL batch input: {exc}"))
        else:
            items = _get(_get(source, "requests") or {}, "requests")
        if not isinstance(items, list) or not items:
            return _Answer(400, error_body(400, "* batch.input_config: requests are empty\n"))
        name = f"batches/{uuid.uuid4().hex[:16]}"
        created = _Batch(
            name=name,
            display_name=str(_get(batch, "display_name") or ""),
            model=f"models/{req.model}",
            items=items,
            api_version=req.api_version or "v1beta",
            headers=req.headers,
            create_time=_now_rfc3339(),
            jsonl=jsonl,
        )
        with self._lock:
            self._batches[name] = created
        return _Answer(200, self._batch_operation(created))

    def _lookup_batch(self, req: RecordedRequest) -> _Batch | None:
        m = _BATCHES_RE.match(req.path)
        with self._lock:
            return self._batches.get(f"batches/{m['batch_id']}") if m else None

    def _answer_batch_get(self, req: RecordedRequest) -> _Answer:
        batch = self._lookup_batch(req)
        if batch is None:
            return _Answer(404, error_body(404, "Requested entity was not found.", "NOT_FOUND"))
        with self._lock:
            batch.gets += 1
            finish = batch.state not in _BATCH_DONE and batch.gets > self.batch_pending_polls
            if not finish and batch.state == "BATCH_STATE_PENDING":
                batch.state = "BATCH_STATE_RUNNING"
        if finish:
            final = self.batch_final_state
            outputs = self._run_batch(batch) if final == "BATCH_STATE_SUCCEEDED" else None
            with self._lock:
                if batch.state not in _BATCH_DONE:
                    batch.outputs, batch.state, batch.end_time = outputs, final, _now_rfc3339()
                    if batch.jsonl and outputs is not None:
                        lines = [
                            json.dumps({"key": (o.pop("metadata", None) or {}).get("key"), **o})
                            for o in outputs
                        ]
                        data = ("\n".join(lines) + "\n").encode()
                        resource = self._create_file(
                            data, "application/jsonl", None, None, batch.api_version
                        )
                        resource["source"] = "GENERATED"
                        resource["downloadUri"] = f"{resource['uri']}:download?alt=media"
                        batch.responses_file = resource["name"]
        return _Answer(200, self._batch_operation(batch))

    def _answer_batch_list(self, req: RecordedRequest) -> _Answer:
        with self._lock:
            batches = list(self._batches.values())
        return _Answer(200, {"operations": [self._batch_operation(b) for b in batches]})

    def _answer_batch_cancel(self, req: RecordedRequest) -> _Answer:
        batch = self._lookup_batch(req)
        if batch is None:
            return _Answer(404, error_body(404, "Requested entity was not found.", "NOT_FOUND"))
        with self._lock:
            if batch.state not in _BATCH_DONE:
                batch.state, batch.end_time = "BATCH_STATE_CANCELLED", _now_rfc3339()
        return _Answer(200, {})

    def _answer_batch_delete(self, req: RecordedRequest) -> _Answer:
        batch = self._lookup_batch(req)
        if batch is None:
            return _Answer(404, error_body(404, "Requested entity was not found.", "NOT_FOUND"))
        with self._lock:
            self._batches.pop(batch.name, None)
        return _Answer(200, {})

    def _run_batch(self, batch: _Batch) -> list[dict[str, Any]]:
        """Answer every request of a batch as ``generateContent`` would (rules apply); each is
        recorded with op ``batch_generate``."""
        outputs = []
        for item in batch.items:
            model = str(_get(_get(item, "request") or {}, "model") or batch.model)
            model = model.removeprefix("models/")
            inner = RecordedRequest(
                op="generate",
                method="POST",
                path=f"/{batch.api_version}/models/{model}:generateContent",
                query={},
                headers=batch.headers,
                path_kind="gemini",
                api_version=batch.api_version,
                model=model,
                received_at=time.monotonic(),
            )
            inner.body = _get(item, "request") or {}
            metadata = _get(item, "metadata")
            try:
                self._parse_generation(inner)
                answer = self._validate_generation(inner)
            except (ValueError, TypeError) as exc:
                answer = _Answer(400, error_body(400, f"Invalid request: {exc}"))
            rule = None
            if answer is None:
                rule = self._pick_rule(inner)
                if rule is not None and rule.is_error:
                    answer = self._error_answer(inner, rule)
            if answer is not None:
                error = dict((answer.body or {}).get("error") or {"code": answer.status})
                entry: dict[str, Any] = {"error": error}
                inner.status = answer.status
            else:
                text = self._text_for(inner, rule)
                entry = {"response": self._success_chunks(inner, rule, text)[0]}
                inner.status = 200
            if metadata is not None:
                entry["metadata"] = metadata
            outputs.append(entry)
            inner.op = "batch_generate"
            with self._lock:
                self.calls["batch_generate"] += 1
                self._requests.append(inner)
        return outputs

    def _batch_operation(self, batch: _Batch) -> dict[str, Any]:
        """The ``Operation`` the Gemini API answers for a batch (state and output in metadata)."""
        with self._lock:
            done = batch.state in _BATCH_DONE
            metadata: dict[str, Any] = {
                "@type": _BATCH_TYPE,
                "name": batch.name,
                "displayName": batch.display_name,
                "model": batch.model,
                "state": batch.state,
                "createTime": batch.create_time,
                "updateTime": _now_rfc3339(),
                "batchStats": {"requestCount": str(len(batch.items))},
            }
            if batch.end_time:
                metadata["endTime"] = batch.end_time
            if batch.responses_file is not None:
                metadata["output"] = {"responsesFile": batch.responses_file}
            elif batch.outputs is not None:
                metadata["output"] = {"inlinedResponses": {"inlinedResponses": batch.outputs}}
            operation: dict[str, Any] = {"name": batch.name, "metadata": metadata}
            if done:
                operation["done"] = True
            if batch.error is not None:
                operation["error"] = batch.error
            return operation

    def _answer_files_download(self, req: RecordedRequest) -> _Answer:
        m = _DOWNLOAD_RE.match(req.path)
        name = f"files/{m['file_id']}" if m else ""
        with self._lock:
            found = self._files.get(name)
        if found is None:
            return _Answer(404, error_body(404, "Requested entity was not found.", "NOT_FOUND"))
        if found.resource.get("source") != "GENERATED":
            return _Answer(
                400, error_body(400, "Only generated files can be downloaded.", "INVALID_ARGUMENT")
            )
        return _Answer(200, raw=found.data, content_type="application/octet-stream")

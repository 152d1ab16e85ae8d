"""The Gemini REST vocabulary the fake speaks: its ops, proto-JSON field spellings, durations
and timestamps, and the answers it writes (Google API error bodies included)."""

from __future__ import annotations

import base64
import datetime as _dt
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "GENERATION_OPS",
    "MIB",
    "OPS",
    "Answer",
    "decode_base64",
    "error_body",
    "format_duration",
    "get_field",
    "normalize_keys",
    "now_rfc3339",
    "retry_info",
    "snake_case",
    "to_camel_keys",
]

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


def snake_case(name: str) -> str:
    """``mediaResolution`` → ``media_resolution`` (snake names pass through unchanged)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def camel_case(name: str) -> str:
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


def get_field(obj: Any, name: str, default: Any = None) -> Any:
    """Read a proto-JSON field from a dict under either spelling (``snake_case`` or camel)."""
    if not isinstance(obj, dict):
        return default
    if name in obj:
        return obj[name]
    return obj.get(camel_case(name), default)


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


def now_rfc3339(offset_s: float = 0.0) -> str:
    moment = _dt.datetime.now(_dt.UTC) + _dt.timedelta(seconds=offset_s)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_camel_keys(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {camel_case(key): value for key, value in mapping.items()}


class Answer:
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

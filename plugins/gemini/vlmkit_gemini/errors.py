"""Turning google-genai, httpx2/httpx, aiohttp and google-auth failures into vlmkit errors.

The SDK raises ``ClientError``/``ServerError`` for HTTP errors, but transport failures surface as
the transport's own exceptions (``httpx2.ReadTimeout``, ``RemoteProtocolError``; under aiohttp
``TimeoutError`` and ``aiohttp.ClientError``), and the 429 retry delay is only in the error's
``details``. :func:`map_error` gives all of them one shape — :class:`~vlmkit.RateLimited` (with
``retry_after``), :class:`~vlmkit.TransientError`, :class:`~vlmkit.AuthError`,
:class:`~vlmkit.InvalidRequest` — with messages that say what to do and never carry a credential.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from vlmkit import (
    AuthError,
    BackendError,
    InvalidRequest,
    RateLimited,
    TransientError,
    VlmkitError,
)

__all__ = [
    "FileGone",
    "SettingRefused",
    "map_error",
    "parse_duration",
    "redact",
    "refused_option",
    "retry_after_of",
    "transport_error_types",
]

_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_DURATION = re.compile(r"^\s*(?P<value>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>s|ms)?\s*$")
_GOOGLE_API_KEY = re.compile(r"AIza[0-9A-Za-z_\-]{35}")
_TRANSIENT_CODES = frozenset({408, 409, 425, 429, 499, 500, 502, 503, 504})


def parse_duration(value: Any) -> float | None:
    """A protobuf JSON Duration (``"1s"``, ``"0.5s"``, ``"1.500s"``) or a number → seconds."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if isinstance(value, Mapping):  # {"seconds": 1, "nanos": 500000000}
        try:
            return float(value.get("seconds", 0)) + float(value.get("nanos", 0)) / 1e9
        except (TypeError, ValueError):
            return None
    match = _DURATION.match(str(value))
    if match is None:
        return None
    seconds = float(match["value"])
    return seconds / 1000 if match["unit"] == "ms" else seconds


def _retry_after_header(value: str | None) -> float | None:
    if not value:
        return None
    seconds = parse_duration(value.strip())
    if seconds is not None:
        return seconds
    try:  # an HTTP date
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _error_body(err: Any) -> Mapping[str, Any]:
    details = getattr(err, "details", None)
    if not isinstance(details, Mapping):
        return {}
    inner = details.get("error", details)
    return inner if isinstance(inner, Mapping) else {}


def _detail_items(err: Any) -> list[Mapping[str, Any]]:
    items = _error_body(err).get("details")
    if not isinstance(items, list):
        return []
    return [item for item in items if isinstance(item, Mapping)]


def retry_after_of(err: Any) -> float | None:
    """The server's requested delay: ``RetryInfo.retryDelay`` in the error details, else the
    ``Retry-After`` header of the HTTP response; ``None`` when neither is given."""
    for item in _detail_items(err):
        if item.get("@type") == _RETRY_INFO:
            seconds = parse_duration(item.get("retryDelay", item.get("retry_delay")))
            if seconds is not None:
                return seconds
    response = getattr(err, "response", None)
    headers = getattr(response, "headers", None)
    if headers is not None:
        try:
            return _retry_after_header(headers.get("retry-after"))
        except Exception:  # an unexpected response object: no header
            return None
    return None


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every given secret and anything shaped like a Google API key removed."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "<redacted>")
    return _GOOGLE_API_KEY.sub("<redacted>", text)


# Words in a 400's message → the option (or feature) that was refused.
_OPTION_WORDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("thinking_budget", "thinkingbudget", "thinking budget"), "thinking_budget"),
    (("thinking_level", "thinkinglevel", "thinking level"), "thinking_level"),
    (("thinking",), "thinking"),
    (("media_resolution", "mediaresolution", "media resolution"), "media_resolution"),
    (("top_k", "topk"), "top_k"),
    (("top_p", "topp"), "top_p"),
    (("temperature",), "temperature"),
    (("seed",), "seed"),
    (("max_output_tokens", "maxoutputtokens"), "max_output_tokens"),
    (("response_schema", "responseschema", "response schema"), "structured_output"),
    (("json mode", "response_mime_type", "responsemimetype", "mime type"), "structured_output"),
    (("system_instruction", "systeminstruction", "developer instruction"), "system"),
    (("safety",), "safety"),
    (("fps", "video_metadata", "videometadata", "offset"), "video"),
)


def refused_option(message: str) -> str | None:
    """Which setting a 400 message complains about (``"thinking_budget"``, ...), if any."""
    lowered = message.lower()
    for words, option in _OPTION_WORDS:
        if any(word in lowered for word in words):
            return option
    return None


def transport_error_types() -> tuple[type[BaseException], ...]:
    """Transport exception classes of every HTTP stack the SDK may use that is importable."""
    found: list[type[BaseException]] = [TimeoutError, ConnectionError]
    try:
        import httpx2

        found += [httpx2.TimeoutException, httpx2.TransportError]
    except ImportError:  # pragma: no cover - the SDK needs one of httpx2/httpx
        pass
    try:
        import httpx

        found += [httpx.TimeoutException, httpx.TransportError]
    except ImportError:
        pass
    try:
        import aiohttp

        found += [aiohttp.ClientError]
    except ImportError:
        pass
    return tuple(found)


def _api_error_message(err: Any) -> tuple[int, str, str]:
    code = int(getattr(err, "code", 0) or 0)
    status = str(getattr(err, "status", "") or "")
    message = str(getattr(err, "message", "") or "").strip()
    if len(message) > 500:  # an HTML error page from a proxy
        message = message[:500] + "..."
    return code, status, message


def _reason(err: Any) -> str | None:
    for item in _detail_items(err):
        if item.get("@type", "").endswith("google.rpc.ErrorInfo"):
            return str(item.get("reason") or "") or None
    return None


def map_error(
    err: BaseException,
    *,
    model: str | None = None,
    vertex: bool = False,
    secrets: Iterable[str | None] = (),
) -> VlmkitError:
    """The vlmkit error for an exception raised by the SDK or its transport.

    Errors that are already vlmkit errors pass through; anything unrecognised becomes a plain
    :class:`~vlmkit.BackendError` (never retried).
    """
    if isinstance(err, VlmkitError):
        return err
    secrets = tuple(secrets)
    service = "Vertex AI" if vertex else "the Gemini API"

    from google.genai import errors as genai_errors

    if isinstance(err, genai_errors.APIError):
        return _map_api_error(err, model=model, vertex=vertex, service=service, secrets=secrets)

    from google.auth import exceptions as auth_exceptions  # google-genai depends on google-auth

    if isinstance(err, auth_exceptions.GoogleAuthError):
        text = redact(str(err), secrets)
        if isinstance(err, auth_exceptions.RefreshError) and getattr(err, "retryable", False):
            return TransientError(f"refreshing Google credentials failed, will retry: {text}")
        return AuthError(
            f"Google credentials failed: {text}. Check the credentials (gcloud auth "
            "application-default login, GOOGLE_APPLICATION_CREDENTIALS, or credentials=...)"
        )

    if isinstance(err, transport_error_types()):
        kind = type(err).__name__
        text = redact(str(err), secrets) or "no details"
        if "timeout" in kind.lower() or isinstance(err, TimeoutError):
            return TransientError(
                f"request to {service} timed out ({kind}); raise timeout_s if answers are slow"
            )
        return TransientError(f"connection to {service} failed ({kind}: {text})")

    return BackendError(f"{service} call failed: {type(err).__name__}: {redact(str(err), secrets)}")


def _map_api_error(
    err: Any, *, model: str | None, vertex: bool, service: str, secrets: tuple[str | None, ...]
) -> VlmkitError:
    code, status, message = _api_error_message(err)
    message = redact(message, secrets).rstrip(". ")
    head = f"{service} answered {code} {status}".rstrip() + (f": {message}" if message else "")
    reason = _reason(err)
    if code == 429:
        retry_after = retry_after_of(err)
        hint = (
            f"; the server asked to wait {retry_after:g} s"
            if retry_after is not None
            else "; lower the concurrency or check the quota of your project"
        )
        return RateLimited(head + hint, retry_after=retry_after)
    if code in (401, 403) or reason in ("API_KEY_INVALID", "API_KEY_SERVICE_BLOCKED"):
        if code == 403 and "file" in message.lower() and "may not exist" in message.lower():
            return FileGone(
                head + ". The uploaded file is gone (the Files API keeps files for 48 hours); "
                "it will be uploaded again on the next call"
            )
        what = (
            "check the credentials and that the account has the Vertex AI User role "
            "(roles/aiplatform.user) on the project"
            if vertex
            else "check the API key (api_key=..., GEMINI_API_KEY or GOOGLE_API_KEY) and that "
            "the Generative Language API is enabled for its project"
        )
        return AuthError(f"{head}. Authentication failed: {what}")
    if code == 404:
        return InvalidRequest(
            f"{head}. Is the model name {model!r} right and available "
            + ("in this project and location?" if vertex else "to this API key?")
        )
    if code in _TRANSIENT_CODES or (code >= 500 and code != 501):
        return TransientError(head)
    if code == 400 and "payload size" in message.lower():
        return InvalidRequest(
            head + ". Lower inline_limit_bytes so large media go through the Files API, or "
            "shrink images with max_image_side"
        )
    return InvalidRequest(head)


class SettingRefused(InvalidRequest):
    """The model refused a setting (``option``), e.g. ``thinking_budget=0`` on Gemini 2.5 Pro."""

    def __init__(self, message: str, *, option: str) -> None:
        super().__init__(message)
        self.option = option


class FileGone(InvalidRequest):
    """A referenced Files API file no longer exists (expired after 48 h, or deleted)."""

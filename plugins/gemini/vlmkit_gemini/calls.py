"""Talking to the SDK: the client's HTTP options, and each call under vlmkit's retry policy.

The SDK's own retries stay off (vlmkit's :class:`~vlmkit_gemini.retry.RetryPolicy` applies) and
every SDK or transport error becomes a vlmkit error (:mod:`vlmkit_gemini.errors`), with the
backend's secrets masked; a 400 that names a refused setting becomes
:class:`~vlmkit_gemini.errors.SettingRefused` naming the value that was sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from vlmkit import InvalidRequest, VlmkitError
from vlmkit_gemini.errors import SettingRefused, map_error, refused_option
from vlmkit_gemini.retry import RetryPolicy

if TYPE_CHECKING:
    from google.genai import types

__all__ = ["SdkCalls", "http_options"]


def http_options(
    *, base_url: str | None, api_version: str | None, timeout_s: float, concurrency: int
) -> types.HttpOptions:
    """The client's HTTP options: endpoint, per-request timeout, and connection pools sized
    for ``concurrency`` requests in flight."""
    import httpx2
    from google.genai import types

    # No retry_options: the SDK's own retries stay off, vlmkit's policy applies.
    # An explicit httpx2 async transport pins the async stack: aiohttp being importable
    # changes nothing (its errors, timeouts and retry behaviour differ).
    keepalive = max(64, 2 * concurrency)
    limits = httpx2.Limits(max_connections=max(100, keepalive), max_keepalive_connections=keepalive)
    return types.HttpOptions(
        base_url=base_url or None,
        api_version=api_version or None,
        timeout=int(timeout_s * 1000),
        client_args={"limits": limits},
        async_client_args={"transport": httpx2.AsyncHTTPTransport(limits=limits)},
    )


@attrs.frozen(kw_only=True)
class SdkCalls:
    """Runs one backend's SDK calls: ``retry`` is its policy, ``model`` and ``vertex`` shape
    the error messages, ``secrets`` are masked out of them."""

    retry: RetryPolicy
    model: str
    vertex: bool
    secrets: tuple[str, ...] = ()

    def call(
        self, function: Callable[[], Any], what: str, sent: Mapping[str, Any] | None = None
    ) -> Any:
        """Run one SDK call under vlmkit's retry policy with errors mapped; ``sent`` (the
        call's options) lets a refused setting be named with its value."""

        def attempt() -> Any:
            try:
                return function()
            except VlmkitError:
                raise
            except Exception as err:
                raise self.map(err, sent) from err

        return self.retry.call(attempt, what=what)

    def map(self, err: BaseException, sent: Mapping[str, Any] | None = None) -> VlmkitError:
        """The vlmkit error for an SDK or transport error."""
        from google.genai import errors as genai_errors

        mapped = map_error(err, model=self.model, vertex=self.vertex, secrets=self.secrets)
        if type(mapped) is not InvalidRequest or not isinstance(err, genai_errors.APIError):
            return mapped
        option = refused_option(str(err.message or "")) if err.code == 400 else None
        if option is None:
            return mapped
        sent = sent or {}
        if option == "thinking":
            option = next((n for n in ("thinking_budget", "thinking_level") if n in sent), option)
        setting = f"{option}={sent[option]!r}" if option in sent else f"the default {option}"
        return SettingRefused(
            f"{self.model} refused {setting}: {mapped}. Change or omit {option}; see the "
            "capability table in docs/backends/gemini.md",
            option=option,
        )

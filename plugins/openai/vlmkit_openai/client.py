"""The HTTP side: one JSON POST to ``/chat/completions``, its failures mapped onto vlmkit's
error tree, and the retry policy for the transient ones.

429 waits what the server's ``Retry-After`` asks (seconds or an HTTP date) when that is within
``max_wait_s``; a longer wait is handed to the runner as :class:`~vlmkit.RateLimited` with its
``retry_after`` (a run stops once on an exhausted quota instead of failing every item). 5xx,
timeouts and dropped connections back off exponentially with jitter. The loop is written by
hand, like vlmkit-gemini's: the standard library speaks this wire, and a retry library would
need custom hooks for the per-error delay and the give-up message.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import vlmkit

__all__ = ["ChatClient", "retry_after_seconds"]

log = logging.getLogger(__name__)


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (it may be a number or an HTTP date); None if absent
    or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class ChatClient:
    """Posts chat requests to an OpenAI-compatible server and retries transient failures.

    ``sleep`` is how it waits (tests inject a recorder); the API key is only ever sent as a
    bearer header, never logged or put in an error message.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 4,
        max_wait_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_wait_s = max_wait_s
        self.sleep = sleep

    def post(self, path: str, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
        """POST ``body`` as JSON; the decoded answer and the latency of the successful call."""
        attempt = 0
        while True:
            try:
                return self._post_once(path, body)
            except vlmkit.TransientError as err:
                attempt += 1
                delay = self._delay(attempt, err)
                if delay is None:
                    if attempt > 1:
                        err.args = (f"{err.args[0]} (gave up after {attempt} attempts)",)
                    raise
                log.debug(
                    "vlmkit-openai: attempt %d failed (%s); retrying in %.2f s",
                    attempt,
                    type(err).__name__,
                    delay,
                )
                self.sleep(delay)

    def _delay(self, attempt: int, err: vlmkit.TransientError) -> float | None:
        """Seconds to wait before the next attempt, or None to give up and raise ``err``."""
        if attempt > self.max_retries:
            return None
        if isinstance(err, vlmkit.RateLimited) and err.retry_after is not None:
            if err.retry_after > self.max_wait_s:
                return None  # the runner decides what a long quota wait means for the run
            return err.retry_after
        return min(8.0, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)

    def _post_once(self, path: str, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        http = urllib.request.Request(
            self.base_url + path, json.dumps(body).encode(), headers, method="POST"
        )
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(http, timeout=self.timeout) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as err:
            raise _http_error(err, self.base_url) from None
        except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as err:
            reason = getattr(err, "reason", err)
            what = "timed out" if isinstance(reason, TimeoutError) else f"failed ({reason})"
            raise vlmkit.TransientError(
                f"the request to {self.base_url} {what} after {self.timeout:g} s at most; check "
                "that the server runs and is not overloaded, or raise the timeout setting"
            ) from err
        except json.JSONDecodeError as err:
            raise vlmkit.TransientError(
                f"{self.base_url} answered with something that is not JSON ({err}); is base_url "
                "the server's OpenAI-compatible root (usually ending in /v1)?"
            ) from err
        return answer, time.perf_counter() - started


def _http_error(err: urllib.error.HTTPError, base_url: str) -> vlmkit.BackendError:
    detail = err.read(500).decode("utf-8", "replace").strip()
    where = f"{base_url} answered HTTP {err.code}"
    if err.code == 429:
        wait = retry_after_seconds(err.headers.get("Retry-After"))
        return vlmkit.RateLimited(f"{where} (rate limited): {detail}", retry_after=wait)
    if err.code in (401, 403):
        return vlmkit.AuthError(f"{where}: check the api_key setting (or OPENAI_API_KEY)")
    if err.code == 404:
        return vlmkit.InvalidRequest(
            f"{where}: {detail}; check base_url (usually ending in /v1) and the model name the "
            "server serves"
        )
    if err.code in (408, 409) or err.code >= 500:
        return vlmkit.TransientError(f"{where}: {detail}")
    return vlmkit.InvalidRequest(f"{where}: {detail}")

"""vlmkit's retry policy for Gemini calls (the SDK's own retries are switched off).

A :class:`~vlmkit.RateLimited` error waits what the server asked for (``RetryInfo.retryDelay`` or
``Retry-After``) plus a little jitter, so a burst of 429s does not come back in lockstep; any other
:class:`~vlmkit.TransientError` (5xx, timeouts, dropped connections) backs off exponentially with
jitter. Attempts and the total time spent waiting are both bounded; when either runs out the last
error is raised with the attempt count in its message. Non-transient errors are never retried.

Written by hand rather than with tenacity (which the SDK itself uses): the per-error delay, the
total-wait budget and the give-up message would each need a custom tenacity hook, and the loop
below is shorter than that glue.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

import attrs

from vlmkit import ConfigError, RateLimited, TransientError

__all__ = ["RetryPolicy"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def _positive(_instance: object, attribute: attrs.Attribute, value: float) -> None:
    if not value >= 0:
        raise ConfigError(f"RetryPolicy.{attribute.name} must be >= 0, got {value!r}")


def _fraction(_instance: object, attribute: attrs.Attribute, value: float) -> None:
    if not 0 <= value <= 1:
        raise ConfigError(f"RetryPolicy.{attribute.name} must be within 0–1, got {value!r}")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How often and how long to retry transient failures.

    * ``max_attempts`` — calls in total, the first included (1 disables retries).
    * ``initial_delay_s`` · ``multiplier`` ** (attempt − 1), capped at ``max_delay_s`` — the
      backoff for errors without a server-given delay; ``jitter`` (0–1) shortens each wait by a
      random fraction up to that much.
    * ``retry_after_jitter`` (0–1) — a 429's requested delay is lengthened by a random fraction
      up to this, never shortened.
    * ``max_total_wait_s`` — give up rather than wait longer than this in total for one call.
    * ``sleep`` — how to wait (inject a fake in tests).
    """

    max_attempts: int = attrs.field(default=5, converter=int)
    initial_delay_s: float = attrs.field(default=1.0, converter=float, validator=_positive)
    multiplier: float = attrs.field(default=2.0, converter=float, validator=_positive)
    max_delay_s: float = attrs.field(default=30.0, converter=float, validator=_positive)
    jitter: float = attrs.field(default=0.5, converter=float, validator=_fraction)
    retry_after_jitter: float = attrs.field(default=0.2, converter=float, validator=_fraction)
    max_total_wait_s: float = attrs.field(default=120.0, converter=float, validator=_positive)
    sleep: Callable[[float], None] = attrs.field(default=time.sleep, eq=False, repr=False)

    @max_attempts.validator
    def _check_attempts(self, _attribute: object, value: int) -> None:
        if value < 1:
            raise ConfigError(f"RetryPolicy.max_attempts must be at least 1, got {value}")

    def delay(self, attempt: int, err: TransientError) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if isinstance(err, RateLimited) and err.retry_after is not None:
            return err.retry_after * (1.0 + random.uniform(0.0, self.retry_after_jitter))
        base = min(self.max_delay_s, self.initial_delay_s * self.multiplier ** (attempt - 1))
        return base * (1.0 - random.uniform(0.0, self.jitter))

    def call(
        self,
        function: Callable[[], T],
        *,
        what: str = "call",
        on_retry: Callable[[int, TransientError, float], None] | None = None,
    ) -> T:
        """Run ``function`` and retry it on :class:`~vlmkit.TransientError` per this policy."""
        waited = 0.0
        attempt = 1
        while True:
            try:
                return function()
            except TransientError as err:
                delay = self.delay(attempt, err)
                if attempt >= self.max_attempts or waited + delay > self.max_total_wait_s:
                    if attempt > 1:
                        err.args = (
                            f"{err.args[0] if err.args else err} (gave up after {attempt} "
                            f"attempts and {waited:.1f} s of waiting)",
                            *err.args[1:],
                        )
                    raise
                log.debug(
                    "vlmkit-gemini: %s attempt %d failed (%s); retrying in %.2f s",
                    what,
                    attempt,
                    type(err).__name__,
                    delay,
                )
                if on_retry is not None:
                    on_retry(attempt, err, delay)
                self.sleep(delay)
                waited += delay
                attempt += 1

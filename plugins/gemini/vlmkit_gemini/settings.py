"""Checking a Gemini backend's construction arguments, each with an error saying what to pass.

Per-call options given at construction become the backend's defaults (validated like the
options of a call); the retry policy is the one passed, or the default, with its shortcuts
``max_attempts`` and ``max_retry_wait_s`` applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from vlmkit import ConfigError
from vlmkit_gemini.options import OPTION_NAMES, OPTIONS
from vlmkit_gemini.retry import RetryPolicy

__all__ = [
    "check_image_settings",
    "concurrency",
    "inline_limit",
    "option_defaults",
    "retry_policy",
    "timeout",
]


def option_defaults(backend_name: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The per-call options given at construction, validated (``None`` values dropped)."""
    unknown = sorted(set(defaults) - OPTION_NAMES)
    if unknown:
        raise ConfigError(
            f"{backend_name} has no argument(s) {', '.join(unknown)}; per-call options "
            f"are {', '.join(sorted(OPTION_NAMES))}; see docs/backends/gemini.md for the "
            "construction arguments"
        )
    declared = {o.name: o for o in OPTIONS}
    return {k: declared[k].validate(v) for k, v in defaults.items() if v is not None}


def timeout(timeout_s: Any) -> float:
    """The per-request timeout in seconds."""
    if timeout_s is None or not timeout_s > 0:
        raise ConfigError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
    return float(timeout_s)


def retry_policy(
    retry: RetryPolicy | None, max_attempts: int | None, max_retry_wait_s: float | None
) -> RetryPolicy:
    """``retry`` (default: :class:`RetryPolicy`'s defaults) with the shortcuts applied."""
    policy = retry or RetryPolicy()
    if max_attempts is not None:
        policy = attrs.evolve(policy, max_attempts=max_attempts)
    if max_retry_wait_s is not None:
        policy = attrs.evolve(policy, max_total_wait_s=max_retry_wait_s)
    return policy


def inline_limit(inline_limit_bytes: Any) -> int:
    """The request budget for inline media, in bytes."""
    if not isinstance(inline_limit_bytes, int) or inline_limit_bytes <= 0:
        raise ConfigError(f"inline_limit_bytes must be a positive int, got {inline_limit_bytes!r}")
    return inline_limit_bytes


def check_image_settings(image_format: Any, jpeg_quality: Any) -> None:
    """Refuse an unknown ``image_format`` or a ``jpeg_quality`` outside 1–100."""
    if str(image_format).lower() not in ("auto", "jpeg", "jpg", "png", "webp"):
        raise ConfigError(f"image_format must be auto, jpeg, png or webp, got {image_format!r}")
    if (
        isinstance(jpeg_quality, bool)
        or not isinstance(jpeg_quality, int)
        or not 1 <= jpeg_quality <= 100
    ):
        raise ConfigError(f"jpeg_quality must be an integer from 1 to 100, got {jpeg_quality!r}")


def concurrency(value: Any) -> int:
    """The number of requests a run may keep in flight on one backend."""
    if int(value) < 1:
        raise ConfigError(f"concurrency must be at least 1, got {value!r}")
    return int(value)

"""gemma-local's knobs: the per-call options, the per-task defaults and the checks every
setting goes through (constructor settings and per-call options alike)."""

from __future__ import annotations

from typing import Any

from vlmkit import ConfigError, Option
from vlmkit_gemma import loading

__all__ = [
    "DEFAULT_IMAGE_BUDGET",
    "DEFAULT_MAX_NEW_TOKENS",
    "DEFAULT_VIDEO_BUDGET",
    "GREEDY_TASKS",
    "OOM_HINT",
    "OPTIONS",
    "budget",
    "check_sampling",
    "optional_positive_int",
    "positive_int",
    "setting",
]

#: ``max_new_tokens`` per task unless set on the backend or per call.
DEFAULT_MAX_NEW_TOKENS: dict[str, int] = {
    "describe": 512,
    "detect": 1024,
    "segment": 1024,
    "ocr": 1024,
    "video": 1024,
}

#: Tasks that decode greedily even when the backend has a default temperature; only a per-call
#: ``do_sample=True`` or ``temperature>0`` makes them sample.
GREEDY_TASKS = frozenset({"detect", "segment", "ocr"})

DEFAULT_IMAGE_BUDGET = 280  # Google's default max_soft_tokens for images
DEFAULT_VIDEO_BUDGET = 70  # per frame; Google suggests a low budget for video
OOM_HINT = (
    "lower max_soft_tokens (e.g. 140 or 70), the backend's batch_size, max_new_tokens or the "
    "number of video frames"
)

OPTIONS: tuple[Option, ...] = (
    Option(
        name="max_soft_tokens",
        type=int,
        choices=loading.SUPPORTED_SOFT_TOKENS,
        help="Gemma 4 only: image-token budget per image (per frame for video); more tokens, "
        "more detail and more time. Default 280 for images, 70 for video frames.",
    ),
    Option(
        name="pan_and_scan",
        type=bool,
        help="Gemma 3 only: add crops of large or elongated images (256 more tokens each).",
    ),
    Option(
        name="max_new_tokens",
        type=int,
        help="Most tokens to generate (default 1024 for detect/ocr/video, 512 for describe).",
    ),
    Option(
        name="do_sample",
        type=bool,
        help="Sample instead of greedy decoding (greedy is the default for every task).",
    ),
    Option(name="temperature", type=float, help="Sampling temperature; > 0 turns sampling on."),
    Option(name="top_p", type=float, help="Nucleus sampling: keep the top-p probability mass."),
    Option(name="top_k", type=int, help="Sample among the k most likely tokens."),
    Option(name="seed", type=int, help="Seed torch's RNG before a sampled generation."),
    Option(
        name="thinking",
        type=bool,
        help="Gemma 4 only: let the model think first (the thinking text is removed).",
    ),
    Option(name="frames", type=int, help="Video: the most frames to sample (default 16)."),
)


def setting(name: str, value: Any, kind: type) -> Any:
    """A constructor setting converted to ``kind``; strings (``--config batch_size=8`` on the
    command line, ``thinking=true``) are accepted the way per-call options are."""
    if value is None:
        return None
    if kind is float and isinstance(value, bool):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    return Option(name=name, type=kind).validate(value)


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def optional_positive_int(name: str, value: Any) -> int | None:
    return None if value is None else positive_int(name, value)


def budget(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or value not in loading.SUPPORTED_SOFT_TOKENS:
        allowed = ", ".join(str(n) for n in loading.SUPPORTED_SOFT_TOKENS)
        raise ConfigError(f"{name} must be one of {allowed}; got {value!r}")
    return int(value)


def check_sampling(temperature: Any, top_p: Any, top_k: Any) -> None:
    if temperature is not None and not float(temperature) >= 0:
        raise ConfigError(f"temperature must be >= 0, got {temperature!r}")
    if top_p is not None and not 0 < float(top_p) <= 1:
        raise ConfigError(f"top_p must be within (0, 1], got {top_p!r}")
    if top_k is not None and (isinstance(top_k, bool) or int(top_k) < 0):
        raise ConfigError(f"top_k must be a non-negative integer, got {top_k!r}")

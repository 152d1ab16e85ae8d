"""Small helpers shared by the built-in sinks: option coercion and image-size lookup."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from vlmkit.errors import ConfigError

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def reject_unknown(sink: str, options: Mapping[str, Any], known: Iterable[str]) -> None:
    """Refuse options a sink does not know, naming the ones it does."""
    if options:
        raise ConfigError(
            f"unknown option(s) for sink {sink!r}: {sorted(options)}; known: {sorted(known)}"
        )


def as_bool(name: str, value: Any) -> bool:
    """A bool option given as a bool or as text (``--option copy_images=true`` on the CLI)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"option {name}={value!r} is not a boolean (use true or false)")


def as_names(name: str, value: Any) -> list[str] | None:
    """A list of class names given as a list or as comma-separated text."""
    if value is None:
        return None
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, Iterable):
        return [str(v) for v in value]
    raise ConfigError(f"option {name}={value!r} must be a list of class names")


def as_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    text = str(value).strip().lower()
    allowed = list(choices)
    if text not in allowed:
        raise ConfigError(f"option {name}={value!r} is not allowed; choose one of {allowed}")
    return text

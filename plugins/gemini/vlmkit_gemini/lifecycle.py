"""Retired Gemini model names and what replaced them.

Google shuts models down on announced dates. Some retired names stop answering (HTTP 404); others
keep answering but are *routed* to a newer model and billed at its rates, so a caller who names
the old model silently gets another one, with other options, prices and mask formats. vlmkit
warns once per backend about either case (:class:`RetiredModelWarning`) and, for routed names,
uses the capabilities and prices of the model that actually answers.

Facts from Google's "Gemini deprecations" page and release notes, as summarised by third parties
and read on 2026-12-03 (see ``docs/backends/gemini.md`` for the sources and what could not be
verified). Extend or correct it per backend with ``retired={pattern: Retired(...)}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from vlmkit import ConfigError
from vlmkit_gemini.models import PatternTable, normalize_model

__all__ = ["RETIRED", "Retired", "RetiredModelWarning", "RetiredTable", "retirement_message"]


class RetiredModelWarning(UserWarning):
    """The backend was built with a model name Google has shut down or reroutes."""


@attrs.frozen(kw_only=True)
class Retired:
    """One retired model (family).

    * ``shutdown`` — the shutdown date (ISO ``YYYY-MM-DD``).
    * ``replacement`` — the model Google recommends instead.
    * ``routed`` — ``True`` when calls to the old name are still answered, by ``replacement``
      and billed at its rates; ``False`` when they fail (404).
    """

    shutdown: str
    replacement: str
    routed: bool = False


class RetiredTable(PatternTable[Retired]):
    """Model-name pattern → :class:`Retired` (immutable; first match wins)."""

    __slots__ = ()

    def _coerce(self, pattern: str, value: Any) -> Retired:
        if isinstance(value, Retired):
            return value
        if isinstance(value, Mapping):
            try:
                return Retired(**dict(value))
            except TypeError as err:
                raise ConfigError(f"invalid retirement for {pattern!r}: {err}") from None
        raise ConfigError(
            f"the retirement for {pattern!r} must be a vlmkit_gemini.lifecycle.Retired, got "
            f"{type(value).__name__}"
        )


#: Retired model names (first match wins). ``gemini-2.5-flash-lite`` is *not* retired.
RETIRED: RetiredTable = RetiredTable(
    [
        (
            "gemini-2.5-flash-image*",
            Retired(shutdown="2026-10-02", replacement="gemini-3.1-flash-image"),
        ),
        (
            "gemini-2.5-flash",
            Retired(shutdown="2026-12-01", replacement="gemini-3.5-flash-lite", routed=True),
        ),
        (
            "gemini-2.5-flash-preview-*",
            Retired(shutdown="2026-12-01", replacement="gemini-3.5-flash-lite"),
        ),
        (
            "gemini-2.5-pro",
            Retired(shutdown="2026-12-01", replacement="gemini-3.8-flash", routed=True),
        ),
        (
            "gemini-2.5-pro-preview-*",
            Retired(shutdown="2025-12-02", replacement="gemini-3.8-flash"),
        ),
        (
            "gemini-2.0-flash-lite*",
            Retired(shutdown="2026-06-01", replacement="gemini-3.5-flash-lite"),
        ),
        ("gemini-2.0-*", Retired(shutdown="2026-06-01", replacement="gemini-3.5-flash")),
        ("gemini-1.5-*", Retired(shutdown="2025-09-24", replacement="gemini-3.5-flash")),
        (
            "gemini-3-pro-preview",
            Retired(shutdown="2026-03-09", replacement="gemini-3.1-pro-preview"),
        ),
        (
            "gemini-robotics-er-1.*",
            Retired(shutdown="2026-08-31", replacement="gemini-robotics-er-2-preview"),
        ),
    ]
)


def retirement_message(model: str, retired: Retired) -> str:
    """The warning for building a backend on ``model``: what happens and what to do."""
    name = normalize_model(model)
    if retired.routed:
        return (
            f"{name} was shut down on {retired.shutdown}; Google now answers it with "
            f"{retired.replacement} and bills at that model's rates. vlmkit uses "
            f"{retired.replacement}'s options, prices and mask format for it. Pass "
            f"model={retired.replacement!r} (or leave the default) to choose the model yourself "
            "and silence this warning."
        )
    return (
        f"{name} was shut down on {retired.shutdown} and no longer answers; use "
        f"model={retired.replacement!r} instead (see docs/backends/gemini.md for the current "
        "models)."
    )

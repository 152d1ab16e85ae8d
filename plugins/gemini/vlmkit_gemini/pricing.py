"""Estimated cost of Gemini calls from their token usage.

The prices below are **estimates**: Google's published list prices for the paid tier of the
Gemini Developer API as of :data:`PRICES_AS_OF`, standard (not batch, not cached, not free-tier)
rates, in USD per one million tokens. Vertex AI list prices were the same for these models.
Prices change; override them per backend (``prices={"gemini-2.5-flash": Price(...)}``) or for
the whole process with :func:`set_price`. Thinking tokens are billed as output tokens.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Mapping

import attrs

from vlmkit.errors import ConfigError
from vlmkit.types import Usage
from vlmkit_gemini.models import normalize_model

__all__ = ["PRICES", "PRICES_AS_OF", "Price", "estimate_cost", "price_for", "set_price"]

PRICES_AS_OF = "2025-12-01"


def _non_negative(_instance: object, attribute: attrs.Attribute, value: float | None) -> None:
    if value is not None and not value >= 0:
        raise ConfigError(f"Price.{attribute.name} must be >= 0, got {value!r}")


@attrs.frozen(kw_only=True)
class Price:
    """USD per 1M tokens. ``thinking`` defaults to ``output``. Prompts longer than
    ``long_context_tokens`` are billed at ``input_long`` / ``output_long`` when those are set."""

    input: float = attrs.field(converter=float, validator=_non_negative)
    output: float = attrs.field(converter=float, validator=_non_negative)
    thinking: float | None = attrs.field(default=None, validator=_non_negative)
    input_long: float | None = attrs.field(default=None, validator=_non_negative)
    output_long: float | None = attrs.field(default=None, validator=_non_negative)
    long_context_tokens: int = 200_000

    def cost(self, usage: Usage) -> float:
        long = self.input_long is not None and usage.prompt_tokens > self.long_context_tokens
        input_rate = self.input_long if long and self.input_long is not None else self.input
        output_rate = self.output_long if long and self.output_long is not None else self.output
        thinking_rate = self.thinking if self.thinking is not None else output_rate
        total = (
            usage.prompt_tokens * input_rate
            + usage.output_tokens * output_rate
            + usage.thinking_tokens * thinking_rate
        )
        return total / 1_000_000


#: Model-name pattern → price; first match wins (specific patterns first).
PRICES: list[tuple[str, Price]] = [
    ("gemini-3-pro*", Price(input=2.00, output=12.00, input_long=4.00, output_long=18.00)),
    ("gemini-3-flash*", Price(input=0.50, output=3.00)),
    ("gemini-2.5-pro*", Price(input=1.25, output=10.00, input_long=2.50, output_long=15.00)),
    ("gemini-2.5-flash-lite*", Price(input=0.10, output=0.40)),
    ("gemini-2.5-flash*", Price(input=0.30, output=2.50)),
    ("gemini-2.0-flash-lite*", Price(input=0.075, output=0.30)),
    ("gemini-2.0-flash*", Price(input=0.10, output=0.40)),
]

_lock = threading.Lock()


def set_price(pattern: str, price: Price) -> None:
    """Add or override a price for a model pattern, ahead of the built-in entries."""
    if not isinstance(price, Price):
        raise ConfigError(f"set_price needs a Price, got {type(price).__name__}")
    with _lock:
        PRICES.insert(0, (pattern.lower(), price))


def _coerce(value: Price | Mapping[str, float]) -> Price:
    if isinstance(value, Price):
        return value
    try:
        return Price(**dict(value))
    except TypeError as err:
        raise ConfigError(f"invalid price {value!r}: {err}") from None


def price_for(model: str, overrides: Mapping[str, Price | Mapping[str, float]] | None = None):
    """The :class:`Price` for ``model`` (overrides first, then :data:`PRICES`), or ``None``."""
    name = normalize_model(model)
    with _lock:
        table = list(PRICES)
    ordered = [(p.lower(), _coerce(v)) for p, v in (overrides or {}).items()] + table
    for pattern, price in ordered:
        if fnmatch.fnmatchcase(name, pattern):
            return price
    return None


def estimate_cost(
    model: str, usage: Usage, overrides: Mapping[str, Price | Mapping[str, float]] | None = None
) -> float | None:
    """Estimated USD cost of ``usage`` on ``model``; ``None`` when the model has no price."""
    price = price_for(model, overrides)
    return None if price is None else price.cost(usage)

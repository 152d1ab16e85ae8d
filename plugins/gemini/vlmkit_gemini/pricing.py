"""Estimated cost of Gemini calls from their token usage.

The prices below are **estimates**: Google's published list prices for the paid tier of the
Gemini Developer API as read on :data:`PRICES_AS_OF`, standard rates in USD per one million
tokens. Cached input tokens (implicit caching, ``cachedContentTokenCount``) are billed at
``cached_input`` (default: 10 % of ``input``, Google's 90 % caching discount); the Flex tier and
the Batch API at half the standard price (:data:`TIER_FACTORS`), Priority at 1.8× (Google says
75–100 % more). Prices change; override them per backend instance
(``prices={"gemini-3.6-flash": Price(...)}`` puts those entries ahead of :data:`PRICES`; a whole
:class:`PriceTable` replaces it). The table itself is immutable, so one Session's prices never
reach another. Thinking tokens are billed as output tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from vlmkit import ConfigError, Request, Usage
from vlmkit_gemini.models import PatternTable

__all__ = [
    "PRICES",
    "PRICES_AS_OF",
    "TIER_FACTORS",
    "Price",
    "PriceTable",
    "estimate_cost",
    "max_request_cost",
    "price_for",
]

PRICES_AS_OF = "2026-12-03"

#: Price multipliers of the service tiers (and the Batch API) against the standard price.
TIER_FACTORS: dict[str, float] = {"standard": 1.0, "flex": 0.5, "batch": 0.5, "priority": 1.8}
_CACHED_SHARE = 0.10
_MAX_OUTPUT_TOKENS = 65_536  # the most output tokens current Gemini models give


def _non_negative(_instance: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value >= 0:
        raise ConfigError(f"Price.{attribute.name} must be >= 0, got {value!r}")


@attrs.frozen(kw_only=True)
class Price:
    """USD per 1M tokens (standard tier). ``thinking`` defaults to ``output``; ``cached_input``
    (input tokens served from the context cache) to 10 % of ``input``. Prompts longer than
    ``long_context_tokens`` are billed at ``input_long`` / ``output_long`` when those are set."""

    input: float = attrs.field(converter=float, validator=_non_negative)
    output: float = attrs.field(converter=float, validator=_non_negative)
    thinking: float | None = attrs.field(default=None, validator=_non_negative)
    input_long: float | None = attrs.field(default=None, validator=_non_negative)
    output_long: float | None = attrs.field(default=None, validator=_non_negative)
    cached_input: float | None = attrs.field(default=None, validator=_non_negative)
    long_context_tokens: int = 200_000

    def cost(self, usage: Usage, tier: str = "standard") -> float:
        """USD for ``usage`` on ``tier`` (``standard``, ``flex``, ``batch`` or ``priority``)."""
        if tier not in TIER_FACTORS:
            raise ConfigError(f"unknown service tier {tier!r}; known: {sorted(TIER_FACTORS)}")
        long = self.input_long is not None and usage.prompt_tokens > self.long_context_tokens
        input_rate = self.input_long if long and self.input_long is not None else self.input
        output_rate = self.output_long if long and self.output_long is not None else self.output
        thinking_rate = self.thinking if self.thinking is not None else output_rate
        cached_rate = self.cached_input if self.cached_input is not None else None
        if cached_rate is None:
            cached_rate = input_rate * _CACHED_SHARE
        cached = min(max(usage.cached_tokens, 0), usage.prompt_tokens)
        total = (
            (usage.prompt_tokens - cached) * input_rate
            + cached * cached_rate
            + usage.output_tokens * output_rate
            + usage.thinking_tokens * thinking_rate
        )
        return total * TIER_FACTORS[tier] / 1_000_000


class PriceTable(PatternTable[Price]):
    """Model-name pattern → :class:`Price` (immutable; first match wins). Values may also be
    given as mappings of :class:`Price` fields (``{"input": 0.3, "output": 2.5}``)."""

    __slots__ = ()

    def _coerce(self, pattern: str, value: Any) -> Price:
        if isinstance(value, Price):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"the price for {pattern!r} must be a vlmkit_gemini.pricing.Price or a mapping "
                f"of its fields, got {type(value).__name__}"
            )
        fields: dict[str, Any] = dict(value)
        try:
            return Price(**fields)
        except TypeError as err:
            raise ConfigError(f"invalid price for {pattern!r}: {value!r} ({err})") from None

    @classmethod
    def of(
        cls, prices: PriceTable | Mapping[str, Price | Mapping[str, float]] | None
    ) -> PriceTable:
        """What a backend's ``prices=`` argument means: ``None`` → :data:`PRICES`; a
        :class:`PriceTable` → itself; a mapping → its entries ahead of :data:`PRICES`."""
        if prices is None:
            return PRICES
        if isinstance(prices, PriceTable):
            return prices
        if isinstance(prices, Mapping):
            return PRICES.extended(prices)
        raise ConfigError(
            "prices must be a mapping {model pattern: Price} or a PriceTable, got "
            f"{type(prices).__name__}"
        )


#: The built-in model-name pattern → price table (immutable); first match wins. Sources and
#: what could not be verified: docs/backends/gemini.md ("Models and prices").
PRICES: PriceTable = PriceTable(
    [
        # 3.8 Flash: introductory price through 2026-12-31, then 1.50 / 7.50 (update then).
        ("gemini-3.8-flash*", Price(input=0.75, output=3.75, cached_input=0.075)),
        ("gemini-3.7-flash*", Price(input=0.75, output=3.75, cached_input=0.075)),
        ("gemini-3.6-flash*", Price(input=1.50, output=7.50, cached_input=0.15)),
        ("gemini-3.5-flash-lite*", Price(input=0.30, output=2.50, cached_input=0.03)),
        ("gemini-3.5-flash*", Price(input=1.50, output=9.00, cached_input=0.15)),
        ("gemini-3.1-flash-lite*", Price(input=0.25, output=1.50)),
        ("gemini-3*-pro*", Price(input=2.00, output=12.00, input_long=4.00, output_long=18.00)),
        ("gemini-3-flash*", Price(input=0.50, output=3.00)),
        ("gemini-2.5-pro*", Price(input=1.25, output=10.00, input_long=2.50, output_long=15.00)),
        ("gemini-2.5-flash-lite*", Price(input=0.10, output=0.40)),
        ("gemini-2.5-flash*", Price(input=0.30, output=2.50)),
        ("gemini-2.0-flash-lite*", Price(input=0.075, output=0.30)),
        ("gemini-2.0-flash*", Price(input=0.10, output=0.40)),
    ]
)


def price_for(model: str, table: PriceTable = PRICES) -> Price | None:
    """The :class:`Price` for ``model`` in ``table`` (default: :data:`PRICES`), or ``None``."""
    return table.lookup(model)


def estimate_cost(
    model: str, usage: Usage, table: PriceTable = PRICES, tier: str = "standard"
) -> float | None:
    """Estimated USD cost of ``usage`` on ``model`` at ``tier`` (``standard``, ``flex``,
    ``batch``, ``priority``); ``None`` when the model has no price."""
    price = table.lookup(model)
    return None if price is None else price.cost(usage, tier)


def max_request_cost(price: Price, request: Request, max_output_tokens: int | None) -> float:
    """A generous upper bound on the cost of ``request`` at ``price``: its prompt (2 characters
    a token), each image at the most tokens Gemini bills for it (258 per 768-pixel tile, at
    least 1120), and ``max_output_tokens`` (else 65,536; thinking included) at the dearer of
    the output and thinking rates."""
    prompt = len(request.prompt) // 2 + len(request.system or "") // 2 + 64
    for sent in request.images:
        width, height = sent.image.size
        prompt += max(1120, 258 * -(-width // 768) * -(-height // 768))
    output = int(max_output_tokens or _MAX_OUTPUT_TOKENS)
    long = price.input_long is not None and prompt > price.long_context_tokens
    input_rate = price.input_long if long and price.input_long is not None else price.input
    rates = [price.output, price.thinking or 0.0, price.output_long or 0.0]
    return (prompt * max(input_rate, price.input) + output * max(rates)) / 1_000_000

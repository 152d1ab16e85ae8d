"""The capability and price tables: immutable defaults, extended per backend instance only."""

from __future__ import annotations

import pytest

pytest.importorskip("google.genai")
pytest.importorskip("vlmkit_gemini")

import vlmkit_gemini.models as models
import vlmkit_gemini.pricing as pricing
from tests.gemini.conftest import MODEL, photo
from vlmkit import ConfigError, Usage
from vlmkit_gemini.models import (
    DEFAULT_CAPS,
    MODEL_TABLE,
    ModelCaps,
    ModelTable,
)
from vlmkit_gemini.pricing import PRICES, Price, PriceTable

BOXES = [{"box_2d": [100, 100, 500, 500], "label": "cat"}]
NINE = ModelCaps(
    thinking="level", levels=("low", "high"), spatial_thinking="low", mask_format="polygon"
)


def test_there_are_no_global_mutators():
    assert not hasattr(models, "register_model")
    assert not hasattr(pricing, "set_price")
    assert isinstance(MODEL_TABLE.entries, tuple) and isinstance(PRICES.entries, tuple)
    with pytest.raises(AttributeError, match="immutable"):
        MODEL_TABLE._entries = ()  # type: ignore[misc]
    with pytest.raises(AttributeError, match="immutable"):
        PRICES.extra = 1  # type: ignore[attr-defined]


def test_extended_returns_a_new_table_with_the_new_entries_first():
    before = MODEL_TABLE.entries
    wider = MODEL_TABLE.extended({"Gemini-9*": NINE, "gemini-2.5-flash*": DEFAULT_CAPS})
    assert MODEL_TABLE.entries == before  # unchanged
    assert isinstance(wider, ModelTable) and len(wider) == len(MODEL_TABLE) + 2
    assert wider.entries[:2] == (("gemini-9*", NINE), ("gemini-2.5-flash*", DEFAULT_CAPS))
    assert wider.caps_for("models/Gemini-9-Pro") is NINE  # names are normalized
    assert wider.caps_for("gemini-2.5-flash") is DEFAULT_CAPS  # overrides win
    assert MODEL_TABLE.caps_for("gemini-2.5-flash") is not DEFAULT_CAPS
    assert MODEL_TABLE.lookup("gemini-9-pro") is None


def test_table_entries_are_checked():
    with pytest.raises(ConfigError, match=r"'gemini-9\*' must be a vlmkit_gemini.models.ModelCaps"):
        MODEL_TABLE.extended({"gemini-9*": {"thinking": "level"}})
    with pytest.raises(ConfigError, match="non-empty"):
        ModelTable([("", NINE)])
    table = PRICES.extended({"my-tuned-*": {"input": 1, "output": 2}})
    assert table.lookup("my-tuned-flash") == Price(input=1.0, output=2.0)
    with pytest.raises(ConfigError, match=r"invalid price for 'x'"):
        PRICES.extended({"x": {"input": 1}})
    with pytest.raises(ConfigError, match=r"must be a vlmkit_gemini.pricing.Price"):
        PRICES.extended({"x": 0.3})


def test_capabilities_extend_the_table_for_one_backend_only(fake_gemini, gemini_session):
    fake_gemini.add_rule(text=BOXES)
    extended = gemini_session(model="gemini-9-pro", capabilities={"gemini-9*": NINE})
    plain = gemini_session(model="gemini-9-pro")

    assert extended.backend.caps is NINE and plain.backend.caps is DEFAULT_CAPS
    assert plain.backend.capability_table is MODEL_TABLE
    assert MODEL_TABLE.lookup("gemini-9-pro") is None  # nothing leaked into the defaults
    extended.detect(photo(), "cats")
    plain.detect(photo(), "cats")
    first, second = fake_gemini.requests_of()
    assert first.generation_config["thinking_config"] == {"thinking_level": "LOW"}
    assert "thinking_config" not in second.generation_config


def test_capabilities_as_one_caps_or_a_whole_table(fake_gemini, gemini_session):
    one = gemini_session(model="gemini-9-pro", capabilities=NINE)
    assert one.backend.caps is NINE
    table = ModelTable([("gemini-*", NINE)])
    whole = gemini_session(model=MODEL, capabilities=table)
    assert whole.backend.capability_table is table and whole.backend.caps is NINE
    with pytest.raises(ConfigError, match=r"capabilities must be"):
        gemini_session(capabilities="gemini-9")
    with pytest.raises(ConfigError, match=r"must be a vlmkit_gemini.models.ModelCaps"):
        gemini_session(capabilities={"gemini-9*": "fast"})


def test_prices_extend_the_price_table_for_one_backend_only(fake_gemini, gemini_session):
    custom = gemini_session(prices={MODEL: Price(input=1.0, output=1.0)})
    default = gemini_session()
    assert default.backend.prices is PRICES
    mine, theirs = custom.describe(photo()), default.describe(photo())
    usage = mine.provenance.usage
    assert usage.cost_usd == pytest.approx(usage.total_tokens / 1e6)
    other = theirs.provenance.usage
    assert other.cost_usd == pytest.approx(
        (other.prompt_tokens * 0.10 + (other.output_tokens + other.thinking_tokens) * 0.40) / 1e6
    )
    assert PRICES.lookup("gemini-2.5-flash") == Price(input=0.30, output=2.50)
    table = PriceTable([("gemini-*", Price(input=0, output=0))])
    assert gemini_session(prices=table).backend.prices is table
    with pytest.raises(ConfigError, match=r"prices must be"):
        gemini_session(prices=[("gemini-*", Price(input=0, output=0))])


def test_estimate_cost_uses_the_given_table():
    usage = Usage(prompt_tokens=1_000_000, output_tokens=0)
    assert pricing.estimate_cost("gemini-2.5-flash", usage) == pytest.approx(0.30)
    cheap = PRICES.extended({"gemini-2.5-flash": Price(input=0.1, output=0.1)})
    assert pricing.estimate_cost("gemini-2.5-flash", usage, cheap) == pytest.approx(0.10)
    assert pricing.estimate_cost("my-model", usage) is None

"""Fixtures of the evaluation tests: the loopback fake Gemini server for pilots."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vlmkit_gemini.testing.fake_server import FakeGemini


@pytest.fixture
def fake_gemini() -> Iterator[FakeGemini]:
    """A fresh fake server per test; fails the test if the fake itself hit an internal error."""
    with FakeGemini() as fake:
        yield fake
        errors = fake.errors
    if errors:
        pytest.fail("fake Gemini server error:\n" + "\n".join(errors), pytrace=False)

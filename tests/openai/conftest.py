from __future__ import annotations

import pytest

from vlmkit_openai.testing import FakeOpenAIServer


@pytest.fixture
def server():
    with FakeOpenAIServer() as fake:
        yield fake


@pytest.fixture
def waits():
    """The retry waits a backend asked for (recorded instead of slept)."""
    return []

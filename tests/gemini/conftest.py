"""Fixtures for driving the real google-genai SDK against the loopback fake Gemini server.

    def test_something(fake_gemini, make_gemini_client):
        fake_gemini.add_rule(prompt_contains="cat", text='{"label": "cat"}')
        client = make_gemini_client()
        assert client.models.generate_content(model=MODEL, contents="a cat?").text == ...

``make_gemini_client``, ``make_vertex_client`` and ``make_express_client`` accept extra
``types.HttpOptions`` fields as keywords (``timeout=``, ``retry_options=``, ``api_version=``);
every client they build is closed at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.gemini.fake_gemini import FakeGemini

try:
    import google.auth.credentials
    from google import genai
    from google.genai import types
except ImportError:  # the Gemini plugin's dependencies are not installed: skip its tests
    genai = None
    collect_ignore_glob = ["test_*.py"]

TEST_API_KEY = "test-api-key"
TEST_PROJECT = "test-project"
TEST_LOCATION = "us-central1"
TEST_TOKEN = "test-token"
MODEL = "gemini-2.5-flash"

if genai is not None:

    class StaticTokenCredentials(google.auth.credentials.Credentials):
        """Credentials that 'refresh' to a fixed token without any I/O (no metadata server)."""

        def __init__(self, token: str = TEST_TOKEN):
            super().__init__()
            self._static_token = token

        def refresh(self, request: Any) -> None:
            self.token = self._static_token


@pytest.fixture
def fake_gemini() -> Iterator[FakeGemini]:
    """A fresh fake server per test; fails the test if the fake itself hit an internal error."""
    with FakeGemini() as fake:
        yield fake
        errors = fake.errors
    if errors:
        pytest.fail("fake Gemini server error:\n" + "\n".join(errors), pytrace=False)


@pytest.fixture
def make_gemini_client(fake_gemini: FakeGemini) -> Iterator[Callable[..., Any]]:
    """Factory: ``make_gemini_client(api_key=TEST_API_KEY, **http_options)`` (api-key mode)."""
    clients: list[Any] = []

    def make(api_key: str = TEST_API_KEY, **http_options: Any) -> genai.Client:
        options = types.HttpOptions(base_url=fake_gemini.base_url, **http_options)
        client = genai.Client(api_key=api_key, http_options=options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def make_vertex_client(fake_gemini: FakeGemini) -> Iterator[Callable[..., Any]]:
    """Factory: Vertex project/location mode, everything passed explicitly (no env, no ADC)."""
    clients: list[Any] = []

    def make(
        project: str = TEST_PROJECT,
        location: str = TEST_LOCATION,
        credentials: Any = None,
        **http_options: Any,
    ) -> genai.Client:
        options = types.HttpOptions(base_url=fake_gemini.base_url, **http_options)
        client = genai.Client(
            vertexai=True,
            project=project,
            location=location,
            credentials=credentials if credentials is not None else StaticTokenCredentials(),
            http_options=options,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def make_express_client(fake_gemini: FakeGemini) -> Iterator[Callable[..., Any]]:
    """Factory: Vertex express mode (``vertexai=True`` with an API key, no project)."""
    clients: list[Any] = []

    def make(api_key: str = TEST_API_KEY, **http_options: Any) -> genai.Client:
        options = types.HttpOptions(base_url=fake_gemini.base_url, **http_options)
        client = genai.Client(vertexai=True, api_key=api_key, http_options=options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()

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

from vlmkit_gemini.testing.fake_server import FakeGemini

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
#: The model most tests run on: a Gemini 2.5 model still served (thinking_budget, PNG masks).
#: Tests of the default model (Gemini 3.x) pass model=None.
MODEL = "gemini-2.5-flash-lite"

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


# --------------------------------------------------------------------------------------------
# Helpers for the vlmkit-gemini backend tests (tests/gemini/test_backend_*.py): build the real
# user path, vlmkit.Session(backend="gemini-api" | "gemini-vertex", ...), against the fake.


class SleepRecorder:
    """An injectable ``sleep`` for retry policies: records the delays, waits ``scale`` of them."""

    def __init__(self, scale: float = 0.0):
        self.scale = scale
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        if self.scale:
            import time

            time.sleep(seconds * self.scale)


@pytest.fixture
def sleeps() -> SleepRecorder:
    """Delays the backend's retry policy asked for (nothing is actually slept)."""
    return SleepRecorder()


def _fast_retry(sleeps: SleepRecorder, **overrides: Any) -> Any:
    from vlmkit_gemini.retry import RetryPolicy

    return RetryPolicy(sleep=sleeps, **overrides)


@pytest.fixture
def gemini_session(fake_gemini: FakeGemini, sleeps: SleepRecorder) -> Iterator[Callable[..., Any]]:
    """Factory: ``gemini_session(**backend_options)`` → a gemini-api ``vlmkit.Session`` on the
    fake, with retries that record instead of sleeping. Closed at teardown."""
    import vlmkit

    sessions: list[Any] = []

    def make(**options: Any) -> Any:
        options.setdefault("api_key", TEST_API_KEY)
        options.setdefault("base_url", fake_gemini.base_url)
        options.setdefault("model", MODEL)  # model=None: the backend's default
        if "retry" not in options:
            options["retry"] = _fast_retry(sleeps, **options.pop("retry_overrides", {}))
        session = vlmkit.Session(backend="gemini-api", **options)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close()


@pytest.fixture
def vertex_session(fake_gemini: FakeGemini, sleeps: SleepRecorder) -> Iterator[Callable[..., Any]]:
    """Factory: a gemini-vertex ``vlmkit.Session`` on the fake, project mode with static
    credentials unless ``api_key=`` (express mode) is given. Closed at teardown."""
    import vlmkit

    sessions: list[Any] = []

    def make(**options: Any) -> Any:
        options.setdefault("base_url", fake_gemini.base_url)
        options.setdefault("model", MODEL)  # model=None: the backend's default
        if "api_key" not in options and not options.get("express"):
            options.setdefault("project", TEST_PROJECT)
            options.setdefault("location", TEST_LOCATION)
            options.setdefault("credentials", StaticTokenCredentials())
        if "retry" not in options:
            options["retry"] = _fast_retry(sleeps, **options.pop("retry_overrides", {}))
        session = vlmkit.Session(backend="gemini-vertex", **options)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close()


def photo(width: int = 320, height: int = 240, seed: int = 0) -> Any:
    """A noisy RGB test photo (encodes as JPEG, like a real photo would)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def tiny_video(path: Any, seconds: int = 12, fps: int = 1, size: int = 32) -> Any:
    """Write a small real MP4 (MPEG-4 Part 2, grey frames) that ``probe_video`` can read."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for index in range(seconds * fps):
            pixels = np.full((size, size, 3), (index * 20) % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path

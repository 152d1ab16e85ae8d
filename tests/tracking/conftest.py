"""Fixtures of the tracking tests: the synthetic clip, and a fake Gemini answering from pixels."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.tracking import clip


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 10 s clip of moving, crossing squares (tests/tracking/clip.py)."""
    return clip.write_clip(tmp_path_factory.mktemp("clip") / "squares.mp4")


@pytest.fixture
def fake() -> Iterator[Any]:
    """A fake Gemini that answers each request with the squares found in its image."""
    pytest.importorskip("google.genai")
    from vlmkit_gemini.testing import FakeGemini

    with FakeGemini() as server:

        def answer(request: Any) -> str:
            return json.dumps(clip.gemini_answer(request.inline_data[0][1]))

        server.add_rule(text=answer)
        yield server
        errors = server.errors
    assert not errors, errors

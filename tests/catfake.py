"""The loopback fake Gemini answering every image with one cat, and small distinct JPEGs: what
the engine tests (``tests/ray``, ``tests/runner/test_processes_engine.py``) label."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

ANSWER = '[{"box_2d": [100, 200, 500, 600], "label": "cat"}]'
MODEL = "gemini-3.5-flash-lite"


def cat_fake() -> Iterator[Any]:
    """A fixture body: the fake Gemini, answering every image with one cat; a test fails if
    the server itself had an error."""
    testing = pytest.importorskip("vlmkit_gemini.testing", reason="the tests use the fake Gemini")
    with testing.FakeGemini() as server:
        server.add_rule(text=ANSWER)
        yield server
        errors = server.errors
    if errors:
        pytest.fail("fake Gemini server error:\n" + "\n".join(errors), pytrace=False)


def make_images(folder: Path, count: int) -> Path:
    """``count`` small, distinct JPEGs."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:03d}.jpg", quality=80)
    return folder

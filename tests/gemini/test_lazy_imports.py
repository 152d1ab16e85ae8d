"""Listing the Gemini backends, and importing the modules GeminiBackend is built from, loads
neither google-genai nor its HTTP stack: the SDK is imported when a backend is built."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("google.genai")

PROBE = """
import sys
import vlmkit
from vlmkit_gemini import (
    calls, modelchoice, models, parts, plugin, pricing, request, response, segment, settings,
)
names = [info.name for info in plugin.vlmkit_backends()]
assert names == ["gemini-api", "gemini-vertex"], names
heavy = sorted(m for m in sys.modules if m.startswith(("google.genai", "httpx2", "httpx")))
print(",".join(heavy))
"""


def test_the_backend_parts_import_no_sdk():
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""  # no google-genai, no httpx / httpx2 module loaded

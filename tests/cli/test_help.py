"""``--help`` reads well in a normal 80-column terminal: nothing cut, no type placeholders."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _help(*command: str) -> str:
    env = {**os.environ, "COLUMNS": "80", "TERM": "xterm"}
    done = subprocess.run(
        [sys.executable, "-m", "vlmkit.cli", *command, "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("command", [("label",), ("detect",), ("segment",)])
def test_help_fits_80_columns_without_cut_text_or_type_placeholders(command):
    text = _help(*command)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    assert "<bool>" not in text and "<int" not in text


def test_label_help_says_where_the_cache_really_is():
    text = " ".join(_help("label").split())  # unwrap
    assert "max_soft_tokens=280" in text
    assert "~/.cache/vlmkit/answers" in text and "$VLMKIT_CACHE_DIR" in text

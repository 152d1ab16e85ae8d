"""``--help`` reads well in a normal 80-column terminal: nothing cut, no type placeholders."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from vlmkit.cli import app


def _help(*command: str) -> str:
    """The help as an 80-column terminal shows it (click wraps to $COLUMNS)."""
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.output


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


def test_command_list_shows_whole_summaries():
    text = _help()
    assert max(len(line) for line in text.splitlines()) <= 80
    commands = text.split("Commands:", 1)[1]
    assert "..." not in commands and "…" not in commands
    assert "broken plugins." in " ".join(text.split())  # the end of backends' summary

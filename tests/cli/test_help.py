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


@pytest.mark.parametrize("command", ["label", "detect", "export", "video"])
def test_arguments_show_their_name_not_a_type(command):
    text = _help(command)
    assert "<list[" not in text and "<str>" not in text and "<path>" not in text
    usage = text.splitlines()[0]
    assert "{" not in usage and "<" not in usage
    if command == "label":
        assert usage == "Usage: vlmkit label [OPTIONS] INPUT..."
        assert "--task detect|segment|describe|ocr" in text


def test_the_command_list_is_grouped_in_panels():
    text = _help()
    panels = [line for line in text.splitlines() if line.endswith("Commands:")]
    assert panels == ["Plugin Commands:", "Task Commands:", "Batch Commands:"]
    tasks = text.split("Task Commands:", 1)[1].split("Batch Commands:", 1)[0]
    assert all(f"  {name} " in tasks for name in ("detect", "segment", "describe", "ocr", "video"))
    assert "  label " in text.split("Batch Commands:", 1)[1]

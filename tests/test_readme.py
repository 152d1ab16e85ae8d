"""The README's test command is exactly what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Run the tests", 1)[1]
    command = re.search(r"```bash\n(.+?)\n```", section, re.DOTALL).group(1).strip()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert command in ci.splitlines(), "README test command and .ci/run differ"


def test_readme_offline_commands_are_the_ones_the_docs_test_runs():
    """The README's offline commands are docs/try-offline.md's, which tests/test_try_offline.py
    runs; so the README's first commands are run by the suite too."""
    from tests.test_try_offline import page_commands

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## See it work first", 1)[1]
    block = re.search(r"```bash\n(.+?)\n```", section, re.DOTALL).group(1)
    install, *commands = [line for line in block.splitlines() if line.strip()]
    assert "pip install -q -e . -e plugins/gemini" in install
    assert commands == page_commands()

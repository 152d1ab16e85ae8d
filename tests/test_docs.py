"""The documentation site builds with ``mkdocs build --strict``: every page is in the nav,
every link and anchor resolves (README and tests/ are not part of the site)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "try-offline" / "index.html").exists()
    assert (tmp_path / "search" / "search_index.json").exists()  # the search plugin ran


@pytest.mark.parametrize("sink", ["coco", "yolo", "annotate", "jsonl"])
def test_every_option_of_a_built_in_sink_is_in_the_cli_docs(sink, tmp_path):
    """The table in docs/cli.md names each option the sink accepts (read from its refusal)."""
    import re

    import vlmkit

    with vlmkit.Session() as session:
        factory = session.sinks()[sink].factory
    with pytest.raises(vlmkit.ConfigError, match="known:") as refused:
        factory(tmp_path, no_such_option=1)
    known = re.findall(r"'(\w+)'", str(refused.value).split("known:", 1)[1])
    assert known
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    table = page.split("## Sink options", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("|")]
    for option in known:
        assert any(
            f"`{option}`" in row and (f"`{sink}`" in row or "all of" in row) for row in rows
        ), f"{sink}.{option} is not in the sink options table of docs/cli.md"

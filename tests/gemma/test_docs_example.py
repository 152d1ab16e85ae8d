"""The vlmkit_gemma.testing example of docs/backends/gemma.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("transformers")

PAGE = Path(__file__).resolve().parents[2] / "docs" / "backends" / "gemma.md"


@pytest.mark.slow
def test_the_tiny_checkpoint_example_runs_as_written(tmp_path, monkeypatch, photo):
    section = PAGE.read_text(encoding="utf-8").split("## Test without the real model", 1)[1]
    code = re.search(r"```python\n(.+?)\n```", section, re.DOTALL).group(1)
    monkeypatch.chdir(tmp_path)
    photo.save("cat.jpg")  # the example's image
    namespace: dict[str, object] = {}
    exec(compile(code, str(PAGE), "exec"), namespace)
    namespace["test_my_pipeline"](tmp_path)

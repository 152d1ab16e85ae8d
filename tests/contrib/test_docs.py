"""Every snippet of the plugin-author pages runs: each page's files (``# NAME`` on the first
line of a block) become a third-party distribution that pip installs, its tests run under
pytest against the installed copy, and its shell commands run against it."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
PAGES = {"writing-a-backend.md": "qwen", "writing-a-sink.md": "csvboxes"}
MAX_LINES = 170  # "fits on a page": prose and code together


def _snippets(page: str) -> tuple[dict[str, str], list[str]]:
    files: dict[str, str] = {}
    commands: list[str] = []
    for language, body in FENCE.findall((DOCS / page).read_text(encoding="utf-8")):
        if language == "bash":
            commands += [line for line in body.splitlines() if line.strip()]
            continue
        name = re.match(r"#\s*(\S+\.(?:py|toml))\n", body)
        assert name, f"{page}: a {language} block must start with a '# FILE' line"
        files[name[1]] = body
    return files, commands


@pytest.mark.slow
@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_snippet_of_the_page_runs_as_a_distribution(page, tmp_path):
    files, commands = _snippets(page)
    assert "pyproject.toml" in files and any(n.startswith("test_") for n in files)
    project, tests, site = tmp_path / "project", tmp_path / "tests", tmp_path / "site"
    project.mkdir()
    tests.mkdir()
    for name, body in files.items():
        (tests if name.startswith("test_") else project / "").joinpath(name).write_text(body)
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    pip += ["--no-build-isolation", "--no-index", "--target", str(site), str(project)]
    subprocess.run(pip, check=True, capture_output=True, text=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH")) if p)
    env.pop("VLMKIT_LOAD_PLUGINS", None)
    pytest_run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert pytest_run.returncode == 0, pytest_run.stdout[-4000:] + pytest_run.stderr[-2000:]
    assert commands, f"{page} shows no command"
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "vlmkit", command
        shown = subprocess.run(
            [sys.executable, "-m", "vlmkit.cli", *argv[1:]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert PAGES[page] in shown.stdout  # the plugin from the page is installed and listed


@pytest.mark.parametrize("page", sorted(PAGES))
def test_the_page_fits_on_a_page(page):
    lines = (DOCS / page).read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_LINES, f"{page} has {len(lines)} lines"

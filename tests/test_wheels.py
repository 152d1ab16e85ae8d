"""docs/install.md's wheel command builds the five wheels, offline, with everything users need
(the testing utilities included)."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # five wheel builds in a fresh pip process
def test_the_documented_pip_wheel_command_builds_the_three_wheels(tmp_path):
    page = (ROOT / "docs" / "install.md").read_text(encoding="utf-8")
    command = re.search(r"\.venv/bin/pip (wheel [^\n]+)", page).group(1).split()
    assert command[:4] == ["wheel", "--no-deps", "-w", "dist/"]
    # the page's command, into a temporary folder and without fetching the build backend
    # (hatchling comes with the test extra; the tests never reach a package index)
    argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    argv += ["-w", str(tmp_path), *command[4:]]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    wheels = {path.name.split("-")[0]: path for path in tmp_path.glob("*.whl")}
    assert set(wheels) == {"vlmkit", "vlmkit_gemini", "vlmkit_gemma", "vlmkit_openai", "vlmkit_ray"}
    with zipfile.ZipFile(wheels["vlmkit_gemini"]) as wheel:
        names = wheel.namelist()
        assert "vlmkit_gemini/testing/__main__.py" in names
        assert "vlmkit_gemini/testing/answers.py" in names
        metadata = wheel.read(next(n for n in names if n.endswith("METADATA"))).decode()
        assert "Requires-Dist: vlmkit<0.2,>=0.1" in metadata
    with zipfile.ZipFile(wheels["vlmkit_gemma"]) as wheel:
        assert "vlmkit_gemma/testing.py" in wheel.namelist()

"""Build and pip-install small plugin distributions for discovery tests.

They are installed with ``pip install --target`` into a temporary folder, exactly as pip
installs any distribution (dist-info with entry_points.txt), and made visible by putting that
folder on ``sys.path`` for one test at a time.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

GOOD = """
import vlmkit
from vlmkit.testing import ScriptedBackend

@vlmkit.hookimpl
def vlmkit_backends():
    yield vlmkit.BackendInfo(
        name="good",
        factory=lambda **config: ScriptedBackend(
            '[{"box_2d": [0, 0, 500, 500], "label": "cat"}]', **config),
        tasks={"detect", "describe"},
        description="A well-behaved test backend.",
    )

@vlmkit.hookimpl
def vlmkit_sinks():
    yield vlmkit.SinkInfo(name="good-sink", factory=lambda out_dir, **o: vlmkit.Sink(out_dir),
                          accepts={"detect"}, description="test sink")
"""

BROKEN = """
import torch_that_is_not_installed  # noqa: F401
"""

TYPO = """
import vlmkit

@vlmkit.hookimpl
def vlmkit_backend():  # misspelled: the spec is vlmkit_backends
    return []
"""

UNDECORATED = """
def vlmkit_backends():  # forgot @vlmkit.hookimpl
    return []
"""

DUPE = """
import vlmkit
from vlmkit.testing import ScriptedBackend

@vlmkit.hookimpl
def vlmkit_backends():
    yield vlmkit.BackendInfo(name="good", factory=ScriptedBackend, tasks={"detect"},
                             description="Claims the same name as vlmkit-test-good.")
"""

SEGMENTER = """
import vlmkit
from vlmkit.testing import ScriptedBackend

@vlmkit.hookimpl
def vlmkit_backends():
    yield vlmkit.BackendInfo(name="segmenter", factory=ScriptedBackend,
                             tasks={"segment", "detect"}, description="segments")
"""

DISTRIBUTIONS = {
    "vlmkit-test-good": GOOD,
    "vlmkit-test-broken": BROKEN,
    "vlmkit-test-typo": TYPO,
    "vlmkit-test-undecorated": UNDECORATED,
    "vlmkit-test-dupe": DUPE,
    "vlmkit-test-segmenter": SEGMENTER,
}


def _write(root: Path, dist: str, source: str) -> Path:
    module = dist.replace("-", "_")
    folder = root / dist
    (folder / module).mkdir(parents=True)
    (folder / module / "__init__.py").write_text(textwrap.dedent(source), encoding="utf-8")
    (folder / "pyproject.toml").write_text(
        textwrap.dedent(f"""
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"

        [project]
        name = "{dist}"
        version = "1.0"

        [project.entry-points.vlmkit]
        {dist.removeprefix("vlmkit-test-")} = "{module}"

        [tool.hatch.build.targets.wheel]
        packages = ["{module}"]
        """),
        encoding="utf-8",
    )
    return folder


def install(root: Path, *, include_example: bool = True) -> Path:
    """Build the test distributions (and contrib/backend-example) and pip-install them into
    ``root/site``; returns that folder."""
    sources = root / "src"
    target = root / "site"
    paths = [str(_write(sources, dist, source)) for dist, source in DISTRIBUTIONS.items()]
    if include_example:
        paths.append(str(REPO / "contrib" / "backend-example"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            *paths,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return target

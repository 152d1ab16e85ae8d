"""Shared fixtures for the gemma-local tests: tiny scripted checkpoints, images, a video.

Checkpoints are built once per test session into a temporary folder (never committed) and are
opened exactly as a user's would be: ``vlmkit.Session(backend="gemma-local", model=folder)``,
which finds the backend through the ``vlmkit`` entry point of the installed vlmkit-gemma.
The Hub is off (``HF_HUB_OFFLINE=1`` from ``tests/conftest.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import vlmkit

try:
    from vlmkit_gemma.testing import build_tiny_gemma3, build_tiny_gemma4
except ModuleNotFoundError:  # not installed: build from the source tree; the backend tests then
    # fail with the install hint of _ensure_plugin_installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "gemma"))
    from vlmkit_gemma.testing import build_tiny_gemma3, build_tiny_gemma4

# Each tiny-tokenizer token is one byte, so a script of n bytes needs n + 1 new tokens.
DETECT_SCRIPT = (
    '```json\n[{"box_2d": [100, 200, 500, 600], "label": "person"}, '
    '{"box_2d": [250, 50, 900, 400], "label": "cat"}]\n```'
)
DETECT_BOXES = (((100, 200, 500, 600), "person"), ((250, 50, 900, 400), "cat"))
SHORT_SCRIPT = '[{"box_2d": [10, 20, 300, 400], "label": "a"}]'
OCR_SCRIPT = "猫に注意\n何かします"
THOUGHT = "<|channel>thought\nThe user wants a person and a cat.<channel|>"
VIDEO_SCRIPT = "00:00 - 00:02 A red square.\n00:02 - 00:04 A blue square."
GARBAGE_SCRIPT = "No objects, sorry!"
NEW_TOKENS = 200  # enough for every script above


def _ensure_plugin_installed() -> None:
    with vlmkit.Session(entrypoints=True) as session:
        if "gemma-local" not in session.backends():
            pytest.fail(
                "the gemma-local backend is not installed: run `pip install -e plugins/gemma` "
                "so its vlmkit entry point is registered",
                pytrace=False,
            )


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny checkpoints by name; built once, in well under a second each."""
    _ensure_plugin_installed()
    root = tmp_path_factory.mktemp("gemma-checkpoints")
    return {
        "g4": build_tiny_gemma4(root / "g4"),
        "g4-detect": build_tiny_gemma4(root / "g4-detect", script=DETECT_SCRIPT),
        "g4-short": build_tiny_gemma4(root / "g4-short", script=SHORT_SCRIPT),
        "g4-ocr": build_tiny_gemma4(root / "g4-ocr", script=OCR_SCRIPT),
        "g4-think": build_tiny_gemma4(
            root / "g4-think", script=THOUGHT + DETECT_SCRIPT, thinking_prefill=True
        ),
        "g4-video": build_tiny_gemma4(root / "g4-video", script=VIDEO_SCRIPT),
        "g4-garbage": build_tiny_gemma4(root / "g4-garbage", script=GARBAGE_SCRIPT),
        "g3-detect": build_tiny_gemma3(root / "g3-detect", script=DETECT_SCRIPT),
    }


@pytest.fixture
def open_session(checkpoints: dict[str, Path]) -> Iterator[Callable[..., vlmkit.Session]]:
    """``open_session(name, **options)``: a Session on a tiny checkpoint, closed afterwards."""
    opened: list[vlmkit.Session] = []

    def make(name: str, **options: object) -> vlmkit.Session:
        options.setdefault("device", "cpu")
        session = vlmkit.Session(backend="gemma-local", model=str(checkpoints[name]), **options)
        opened.append(session)
        return session

    yield make
    for session in opened:
        session.close()


def noise_image(width: int, height: int, seed: int = 0):
    """A random RGB picture, so different images really give different prompts."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


@pytest.fixture(scope="session")
def photo():
    """A non-square 640×360 picture (66 image tokens at budget 70, 264 at 280)."""
    return noise_image(640, 360)


@pytest.fixture(scope="session")
def tiny_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s at 4 fps, 64×48, written with PyAV: red for 2 s, then blue."""
    av = pytest.importorskip("av")
    import numpy as np

    path = tmp_path_factory.mktemp("gemma-video") / "clip.mp4"
    fps = 4
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(4 * fps):
            color = (255, 0, 0) if index < 2 * fps else (0, 0, 255)
            pixels = np.full((48, 64, 3), color, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path

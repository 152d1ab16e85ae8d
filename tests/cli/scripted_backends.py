"""A plugin module for the CLI tests: a scripted backend for every task, loaded with --plugin.

It imports only the public vlmkit API, so it also loads as a plain file
(``vlmkit --plugin tests/cli/scripted_backends.py ...``) from a subprocess.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

import vlmkit
from vlmkit.testing import ScriptedBackend

# A 100 x 100 probability crop whose left half is on: area = half of the box.
_crop = np.zeros((100, 100), dtype=np.uint8)
_crop[:, :50] = 255
_buffer = io.BytesIO()
Image.fromarray(_crop).save(_buffer, format="PNG")
MASK_PNG = "data:image/png;base64," + base64.b64encode(_buffer.getvalue()).decode()

DETECT = '```json\n[{"box_2d": [100, 200, 500, 600], "label": "cat"}]\n```'
SEGMENT = f'[{{"box_2d": [0, 0, 500, 500], "mask": "{MASK_PNG}", "label": "ramp"}}]'
VIDEO = "00:00 - 00:01 a grey screen\n00:01 - 00:02 it turns white"
# Google's pointing format ([y, x] on 0-1000); the dog lies off the grid and is clamped.
POINTS = '[{"point": [250, 100], "label": "cat"}, {"point": [500, 1200], "label": "dog"}]'
OPTIONS = (
    vlmkit.Option(name="max_soft_tokens", type=int, choices=(70, 140, 280)),
    vlmkit.Option(name="api_token", type=str),
    vlmkit.Option(name="seed_key", type=int),  # a secret-looking name whose errors echo values
)


def _ocr(request: vlmkit.Request) -> str:
    if "box_2d" in request.prompt:
        return '[{"text": "HELLO", "box_2d": [0, 0, 100, 500]}]'
    return "HELLO\nWORLD"


def _describe(request: vlmkit.Request) -> str:
    return f"{len(request.images)} image(s): a blue square."


SCRIPT = {
    "detect": DETECT,
    "segment": SEGMENT,
    "describe": _describe,
    "ocr": _ocr,
    "video": VIDEO,
    "points": POINTS,
}


# Corners out of order, a score, a label with a terminal escape, then cut off mid-item.
SLOPPY = vlmkit.Generation(
    text=(
        '[{"box_2d": [500, 600, 100, 200], "label": "cat\\u001b[2J", "score": 0.875}, {"box_2d": [1'
    ),
    finish=vlmkit.FinishReason.MAX_TOKENS,
)


def _factory(*, api_key: str | None = None, **config: object) -> ScriptedBackend:
    """Takes an ``api_key`` setting like a real API backend (and ignores it)."""
    return ScriptedBackend(SCRIPT, options=OPTIONS, **config)  # type: ignore[arg-type]


@vlmkit.hookimpl
def vlmkit_backends():
    yield vlmkit.BackendInfo(
        name="scripted",
        factory=_factory,
        tasks=vlmkit.records.TASKS,
        media={"image", "video"},
        description="Answers from a fixed script (CLI tests).",
    )
    yield vlmkit.BackendInfo(
        name="sloppy",
        factory=lambda **config: ScriptedBackend(SLOPPY, **config),
        tasks={"detect"},
        description="Answers like a model that ran out of tokens.",
    )
    yield vlmkit.BackendInfo(
        name="detect-only",
        factory=_factory,
        tasks={"detect"},
        description="Only detects.",
    )

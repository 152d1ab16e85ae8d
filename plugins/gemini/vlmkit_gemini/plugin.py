"""Registers the gemini-api and gemini-vertex backends (entry point ``vlmkit: gemini``).

Cheap by design: google-genai and the backend module are imported only when a Session selects
one of these backends.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import vlmkit
from vlmkit_gemini.options import API_SETTINGS, OPTIONS, VERTEX_SETTINGS

_TASKS = ("describe", "detect", "segment", "ocr", "video", "points")
# a request per sampled frame, or one video request for boxes at timestamps (videotrack.py)
_TRACK_ROUTES = ("frames", "native")
# The construction settings that change answers (what is asked, where, of which pixels): the
# answer cache and run folders key on these; timeouts, retries and concurrency do not count.
_API_ANSWERS = ("base_url", "api_version", "max_image_side", "image_format", "jpeg_quality")
_VERTEX_ANSWERS = (*_API_ANSWERS, "project", "location", "express")


def _gemini_api(**config: Any) -> vlmkit.Backend:
    from vlmkit_gemini.backend import GeminiApiBackend

    return GeminiApiBackend(**config)


def _gemini_vertex(**config: Any) -> vlmkit.Backend:
    from vlmkit_gemini.backend import GeminiVertexBackend

    return GeminiVertexBackend(**config)


@vlmkit.hookimpl
def vlmkit_backends() -> Iterator[vlmkit.BackendInfo]:
    yield vlmkit.BackendInfo(
        name="gemini-api",
        factory=_gemini_api,
        tasks=_TASKS,
        media=("image", "video"),
        description="Google Gemini through the Gemini Developer API (API key; Files API).",
        settings=API_SETTINGS,
        answer_settings=_API_ANSWERS,
        options=OPTIONS,
        track_routes=_TRACK_ROUTES,
    )
    yield vlmkit.BackendInfo(
        name="gemini-vertex",
        factory=_gemini_vertex,
        tasks=_TASKS,
        media=("image", "video"),
        description="Google Gemini on Vertex AI (project + credentials, or express-mode key).",
        settings=VERTEX_SETTINGS,
        answer_settings=_VERTEX_ANSWERS,
        options=OPTIONS,
        track_routes=_TRACK_ROUTES,
    )

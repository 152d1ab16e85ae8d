"""Registers the ``gemma-local`` backend with vlmkit (entry point ``gemma``).

Cheap by design: nothing heavy is imported here. torch and transformers load when a Session
selects the backend (the factory imports :mod:`vlmkit_gemma.backend`), and the weights load on
the first request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import vlmkit

__all__ = ["vlmkit_backends"]


def _factory(**config: Any) -> vlmkit.Backend:
    from vlmkit_gemma.backend import GemmaLocalBackend

    return GemmaLocalBackend(**config)


@vlmkit.hookimpl
def vlmkit_backends() -> Iterator[vlmkit.BackendInfo]:
    yield vlmkit.BackendInfo(
        name="gemma-local",
        factory=_factory,
        tasks={"describe", "detect", "ocr", "video"},
        media={"image", "video"},
        description=(
            "Gemma 4 (default google/gemma-4-E2B-it) and Gemma 3 vision models on this machine "
            "through transformers; no API key"
        ),
    )

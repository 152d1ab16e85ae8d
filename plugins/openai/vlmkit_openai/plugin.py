"""Registers the ``openai`` backend (the entry point of vlmkit-openai)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import vlmkit
from vlmkit_openai.backend import OPTIONS


def _build(**settings: Any) -> vlmkit.Backend:
    from vlmkit_openai.backend import OpenAIBackend

    return OpenAIBackend(**settings)


@vlmkit.hookimpl
def vlmkit_backends() -> Iterator[vlmkit.BackendInfo]:
    yield vlmkit.BackendInfo(
        name="openai",
        factory=_build,
        tasks={"describe", "detect", "ocr"},
        description="Gemma, Qwen and other VLMs served by vLLM, SGLang, Ollama or llama.cpp "
        "(OpenAI-compatible chat endpoint).",
        settings=(
            vlmkit.Option(name="model", help="the served model's name, as the server lists it"),
            vlmkit.Option(name="base_url", help="the server, e.g. http://localhost:8000/v1"),
            vlmkit.Option(name="api_key", help="sent as a bearer token (or OPENAI_API_KEY)"),
            vlmkit.Option(
                name="family",
                choices=("auto", "gemma", "qwen", "qwen3"),
                help="how the model writes boxes; auto: from the model name",
            ),
            vlmkit.Option(name="convention", help="override the family's box convention"),
            vlmkit.Option(name="max_side", type=int, min=28, help="longest side sent (px)"),
            vlmkit.Option(
                name="concurrency", type=int, min=1, help="requests in flight (default 32)"
            ),
            vlmkit.Option(name="timeout", type=float, min=0.001, help="seconds per request"),
            vlmkit.Option(name="max_retries", type=int, min=0, help="retries on 429/5xx/timeouts"),
        ),
        options=OPTIONS,
        answer_settings={"model", "base_url", "family", "convention", "max_side"},
    )

"""What the fake records and what scripts it: requests as received (:class:`RecordedRequest`,
:class:`Headers`), scripted answers (:class:`Rule`), and what each model family refuses."""

from __future__ import annotations

import fnmatch
import math
import random
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from vlmkit_gemini.testing.wire import GENERATION_OPS, get_field

__all__ = ["SHUT_DOWN_MODELS", "Headers", "RecordedRequest", "Rule", "TextSpec", "model_refusal"]

_SECRET_HEADERS = frozenset({"x-goog-api-key", "authorization"})


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only request headers; ``items()`` keeps the names as sent.

    The repr hides the values of ``x-goog-api-key`` and ``Authorization``.
    """

    def __init__(self, pairs: Iterable[tuple[str, str]]):
        self._pairs = list(pairs)
        self._map = {name.lower(): value for name, value in self._pairs}

    def __getitem__(self, name: str) -> str:
        return self._map[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._map

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def items(self):  # type: ignore[override]
        return list(self._pairs)

    def names(self) -> list[str]:
        """Header names exactly as the client spelled them."""
        return [name for name, _ in self._pairs]

    def __repr__(self) -> str:
        shown = {
            name: ("<redacted>" if name.lower() in _SECRET_HEADERS else value)
            for name, value in self._pairs
        }
        return f"Headers({shown!r})"


#: Model-name patterns that answer 404 (shut down), as the Gemini API does for retired models.
SHUT_DOWN_MODELS = ("gemini-1.5-*", "gemini-2.0-*", "gemini-3-pro-preview")

_NO_MINIMAL_LEVEL = ("gemini-3.8-flash*", "gemini-3*-pro*")


def model_refusal(req: RecordedRequest) -> tuple[int, str] | None:
    """``(status, message)`` when ``req``'s model refuses what the request sets, else ``None``.

    Gemini 3.x takes ``thinking_level`` (3.8 Flash and Pro have no ``minimal``), Gemini 2.5
    takes ``thinking_budget``; no model takes both. ``media_resolution`` per part and
    ``ULTRA_HIGH`` are Gemini 3.x only. Shut-down models answer 404.
    """
    model = (req.model or "").lower()
    version = req.api_version or "v1beta"
    if any(fnmatch.fnmatchcase(model, p) for p in SHUT_DOWN_MODELS):
        return 404, (
            f"models/{model} is not found for API version {version}, or is not supported for "
            "generateContent. Call ListModels to see the list of available models and their "
            "supported methods."
        )
    cfg = req.generation_config
    thinking = cfg.get("thinking_config") or {}
    budget, level = thinking.get("thinking_budget"), thinking.get("thinking_level")
    if budget is not None and level is not None:
        return 400, "You can only set only one of thinking budget and thinking level."
    gemini3 = model.startswith(("gemini-3", "gemini-robotics-er-2"))
    if level is not None and model.startswith("gemini-2"):
        return 400, "Thinking level is not supported for this model."
    if str(level).upper() == "MINIMAL" and any(
        fnmatch.fnmatchcase(model, p) for p in _NO_MINIMAL_LEVEL
    ):
        return 400, "Thinking level MINIMAL is not supported for this model."
    if req.part_media_resolution and not gemini3:
        return 400, "Media resolution per part is not supported for this model."
    if "ULTRA_HIGH" in str(cfg.get("media_resolution") or "") and not gemini3:
        return 400, "Media resolution MEDIA_RESOLUTION_ULTRA_HIGH is not supported for this model."
    return None


@dataclass(repr=False)
class RecordedRequest:
    """One request the fake received, parsed. ``status`` is what the fake answered."""

    op: str
    method: str
    path: str
    query: dict[str, str]
    headers: Headers
    path_kind: str | None = None  # "gemini" | "vertex" | "express"
    api_version: str | None = None
    model: str | None = None
    project: str | None = None
    location: str | None = None
    body: Any = None  # parsed JSON (None for upload chunks and bodies over the limit)
    body_size: int = 0
    prompt_text: str = ""
    inline_data: list[tuple[str, bytes]] = field(default_factory=list)
    file_data: list[tuple[str, str]] = field(default_factory=list)
    video_metadata: list[dict[str, Any]] = field(default_factory=list)
    part_media_resolution: list[str] = field(default_factory=list)  # per-part levels sent
    generation_config: dict[str, Any] = field(default_factory=dict)
    system_instruction: str | None = None
    response_schema: Any = None
    safety_settings: list[dict[str, Any]] = field(default_factory=list)
    upload_command: str | None = None
    upload_offset: int | None = None
    received_at: float = 0.0
    status: int | None = None  # None: not answered yet, or the connection was dropped
    rule: Rule | None = None  # the rule that answered, if any

    def __repr__(self) -> str:
        inline = [(mime, f"<{len(data)} bytes>") for mime, data in self.inline_data]
        prompt = self.prompt_text if len(self.prompt_text) <= 80 else self.prompt_text[:77] + "..."
        return (
            f"RecordedRequest(op={self.op!r}, {self.method} {self.path}, status={self.status}, "
            f"model={self.model!r}, prompt_text={prompt!r}, inline_data={inline}, "
            f"file_data={self.file_data})"
        )

    @property
    def api_key(self) -> str | None:
        return self.headers.get("x-goog-api-key")

    @property
    def bearer_token(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None

    @property
    def thinking_budget(self) -> int | None:
        return (self.generation_config.get("thinking_config") or {}).get("thinking_budget")

    @property
    def media_resolution(self) -> str | None:
        return self.generation_config.get("media_resolution")

    @property
    def thinking_level(self) -> str | None:
        return (self.generation_config.get("thinking_config") or {}).get("thinking_level")

    @property
    def service_tier(self) -> str | None:
        body = self.body if isinstance(self.body, dict) else {}
        return get_field(body, "service_tier")


TextSpec = str | dict | list | Callable[[RecordedRequest], Any] | None


@dataclass(eq=False)
class Rule:
    """A scripted answer. Build them with :meth:`FakeGemini.add_rule`; ``hits`` counts uses."""

    ops: frozenset[str] = GENERATION_OPS
    model: str | None = None
    prompt_contains: str | re.Pattern[str] | None = None
    path_kind: str | None = None
    match: Callable[[RecordedRequest], bool] | None = None
    text: TextSpec = None
    finish_reason: str = "STOP"
    usage: dict[str, Any] | None = None
    thoughts_tokens: int = 32
    thought_text: str | None = None
    block_reason: str | None = None
    candidate_safety: bool = False
    status: int | None = None
    error_status: str | None = None
    message: str | None = None
    details: list[dict[str, Any]] | None = None
    retry_delay: float | None = None
    delay_s: float = 0.0
    drop_connection: bool = False
    times: int | None = None
    ratio: float | None = None
    seed: int = 0
    body: Any = None
    html_error: str | None = None
    headers: dict[str, str | None] | None = None
    stream_chunks: int = 2
    stream_error_after: int | None = None
    hits: int = 0
    _seen: int = 0
    _phase: float = 0.0

    def __post_init__(self) -> None:
        self._phase = random.Random(self.seed).random()

    def matches(self, req: RecordedRequest) -> bool:
        if req.op not in self.ops:
            return False
        if self.path_kind is not None and req.path_kind != self.path_kind:
            return False
        if self.model is not None and not fnmatch.fnmatchcase(req.model or "", self.model):
            return False
        if isinstance(self.prompt_contains, re.Pattern):
            if not self.prompt_contains.search(req.prompt_text):
                return False
        elif self.prompt_contains is not None and self.prompt_contains not in req.prompt_text:
            return False
        return self.match is None or bool(self.match(req))

    def _take(self) -> bool:
        """Called under the fake's lock for a matching request: does the rule fire this time?"""
        if self.times is not None and self.hits >= self.times:
            return False
        if self.ratio is not None:
            # Exact deterministic fraction: fires on call i when floor(i*ratio + phase) steps.
            i = self._seen
            self._seen += 1
            if math.floor((i + 1) * self.ratio + self._phase) == math.floor(
                i * self.ratio + self._phase
            ):
                return False
        self.hits += 1
        return True

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times

    @property
    def is_error(self) -> bool:
        return self.html_error is not None or (self.status is not None and self.status >= 400)

"""What the Gemini backends accept, as plain records (no SDK import): per-call options and
construction settings. The Session validates per-call options against :data:`OPTIONS`, and
construction values given as strings (the CLI's ``--config k=v``) against :data:`API_SETTINGS` /
:data:`VERTEX_SETTINGS` before the backend is built."""

from __future__ import annotations

from typing import Any

from vlmkit import Option

__all__ = [
    "API_SETTINGS",
    "COMMON_SETTINGS",
    "DEFAULT_MAX_OUTPUT_TOKENS",
    "OPTIONS",
    "VERTEX_SETTINGS",
]

#: ``max_output_tokens`` sent per task when the caller set none. Thinking tokens count against
#: it, and Gemini 3.x Flash thinks about 2–3k tokens before answering at its default level, so
#: each default leaves that room plus a generous answer (a crowded detection list, polygon masks,
#: a page of OCR) while still stopping a runaway answer long before the model's 65,536 limit.
DEFAULT_MAX_OUTPUT_TOKENS: dict[str, int] = {
    "detect": 16384,
    "points": 16384,
    "segment": 32768,
    "ocr": 16384,
    "describe": 8192,
    "video": 16384,
}


def _optional_int(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    return int(value)


_optional_int.__name__ = "int or None"

#: Per-call options (keywords of a task call, or defaults given to the Session).
OPTIONS: tuple[Option, ...] = (
    Option(name="temperature", type=float, min=0.0, max=2.0, help="sampling temperature"),
    Option(name="top_p", type=float, min=0.0, max=1.0, help="nucleus sampling"),
    Option(name="top_k", type=int, min=1, help="top-k sampling"),
    Option(name="seed", type=int, help="sampling seed (best-effort determinism)"),
    Option(
        name="max_output_tokens",
        type=int,
        min=1,
        help="cap on thinking + answer tokens (default per task: DEFAULT_MAX_OUTPUT_TOKENS)",
    ),
    Option(
        name="media_resolution",
        type=str,
        choices=("low", "medium", "high", "ultra_high"),
        help="tokens per image or frame (per part on Gemini 3.x; ultra_high: 3.x images only)",
    ),
    Option(
        name="service_tier",
        type=str,
        choices=("standard", "flex", "priority"),
        help="flex: 50 % price, slower, may answer 503 (retried); priority: faster, dearer",
    ),
    Option(
        name="thinking_budget",
        type=int,
        min=-1,
        help="Gemini 2.5: thinking tokens (0 = off where allowed, -1 = dynamic)",
    ),
    Option(
        name="thinking_level",
        type=str,
        choices=("minimal", "low", "medium", "high"),
        help="Gemini 3.x: how much to think (per task; more can raise detection recall)",
    ),
    Option(
        name="structured_output",
        type=bool,
        default=True,
        help="detect: constrain the answer with the box_2d response schema",
    ),
    Option(
        name="safety",
        type=str,
        choices=(
            "default",
            "block_none",
            "block_only_high",
            "block_medium_and_above",
            "block_low_and_above",
            "off",
        ),
        default="default",
        help="safety filter threshold for the four standard harm categories",
    ),
    Option(name="timeout_s", type=float, min=0.001, help="HTTP timeout of this call (seconds)"),
)
OPTION_NAMES = frozenset(option.name for option in OPTIONS)

#: Construction settings both backends take.
COMMON_SETTINGS: tuple[Option, ...] = (
    Option(name="model", type=str, default="gemini-3.6-flash", help="model name"),
    Option(name="base_url", type=str, help="endpoint to send requests to (any compatible one)"),
    Option(name="api_version", type=str, help="API version path segment (SDK default)"),
    Option(name="timeout_s", type=float, min=0.001, default=120.0, help="HTTP timeout (s)"),
    Option(name="max_attempts", type=int, min=1, default=5, help="calls per request"),
    Option(
        name="max_retry_wait_s",
        type=float,
        min=0.0,
        default=120.0,
        help="most time spent waiting between retries of one request",
    ),
    Option(
        name="inline_limit_bytes",
        type=int,
        min=1,
        default=20_000_000,
        help="request budget for inline media, base64 growth included",
    ),
    Option(
        name="max_image_side",
        type=_optional_int,
        help="shrink images so the longer side is at most this (default: original pixels)",
    ),
    Option(
        name="image_format",
        type=str,
        choices=("auto", "jpeg", "png", "webp"),
        default="auto",
        help="how images are sent (auto: unchanged JPEG/PNG/WEBP files as they are, else JPEG)",
    ),
    Option(name="jpeg_quality", type=int, min=1, max=100, default=90, help="JPEG/WEBP quality"),
    Option(name="concurrency", type=int, min=1, default=16, help="calls to keep in flight"),
)

#: Construction settings of gemini-api.
API_SETTINGS: tuple[Option, ...] = (
    *COMMON_SETTINGS,
    Option(name="api_key", type=str, help="API key (default: GOOGLE_API_KEY, GEMINI_API_KEY)"),
    Option(name="keep_files", type=bool, default=False, help="keep Files API uploads on close"),
    Option(
        name="file_timeout_s",
        type=float,
        min=0.0,
        default=600.0,
        help="how long to wait for an upload to become ACTIVE",
    ),
    Option(
        name="file_poll_interval_s",
        type=float,
        min=0.0,
        default=1.0,
        help="first wait between processing polls (grows by 1.5×)",
    ),
    Option(
        name="reuse_upload_min_bytes",
        type=_optional_int,
        default=1024 * 1024,
        help="images this large sent a second time go through the Files API (None: never)",
    ),
    Option(
        name="batch_max_requests",
        type=int,
        min=1,
        default=1000,
        help="--mode batch: requests per batch job (jobs also stay under 19 MB)",
    ),
    Option(
        name="batch_poll_interval_s",
        type=float,
        min=0.0,
        default=30.0,
        help="--mode batch: wait between job status polls (s)",
    ),
    Option(
        name="batch_inline_limit_bytes",
        type=int,
        min=1,
        default=19_000_000,
        help="--mode batch: larger jobs go as a JSONL file through the Files API",
    ),
)

#: Construction settings of gemini-vertex.
VERTEX_SETTINGS: tuple[Option, ...] = (
    *COMMON_SETTINGS,
    Option(name="project", type=str, help="Google Cloud project (default: GOOGLE_CLOUD_PROJECT)"),
    Option(name="location", type=str, help="region (default: GOOGLE_CLOUD_LOCATION, global)"),
    Option(name="api_key", type=str, help="Vertex express-mode API key"),
    Option(name="express", type=bool, default=False, help="express mode with GOOGLE_API_KEY"),
)

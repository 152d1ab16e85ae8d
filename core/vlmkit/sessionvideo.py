"""The Session's video entry points, :meth:`~vlmkit.Session.video` (ask about a video) and
:meth:`~vlmkit.Session.track` (objects tracked through one, :mod:`vlmkit.tracking`): defined
here, methods of :class:`~vlmkit.Session`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlmkit.backend import VideoInput
from vlmkit.errors import ConfigError, MediaError
from vlmkit.types import VideoResult

if TYPE_CHECKING:
    from vlmkit.session import Session

__all__ = ["track", "video"]


def video(
    self: Session,
    source: str | Path,
    prompt: str | None = None,
    *,
    fps: float | None = None,
    start: float | None = None,
    end: float | None = None,
    max_frames: int | None = None,
    **options: Any,
) -> VideoResult:
    """Ask about a video (a local path, or a provider URI such as ``gs://...``).

    ``fps`` sets the sampling rate; ``start``/``end`` (seconds) clip it; ``max_frames``
    caps the frames a frame-sampling backend sends.
    """
    from vlmkit.video import probe_video, video_mime_type

    if not isinstance(source, (str, os.PathLike)):
        raise ConfigError(
            f"video takes a file path or a provider URI (gs://...), got {type(source).__name__}"
        )
    source_text = str(source)
    is_uri = "://" in source_text
    if not is_uri and not Path(source_text).is_file():
        raise MediaError(f"video not found: {source_text}", source=source_text)
    if fps is not None and fps <= 0:
        raise ConfigError(f"fps must be positive, got {fps}")
    if start is not None and end is not None and end <= start:
        raise ConfigError(f"end ({end}) must be after start ({start})")
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"max_frames must be at least 1, got {max_frames}")
    settings: dict[str, Any] = {}
    if not is_uri:
        # unreadable videos fail here, before any upload or model call; the duration
        # lets the parser drop events the model placed after the end
        settings["duration_s"] = probe_video(source_text).duration_s
    text, _ = self._prompt("video", prompt)
    video = VideoInput(
        source=source_text,
        fps=fps,
        start_s=start,
        end_s=end,
        mime_type=video_mime_type(source_text),
        max_frames=max_frames,
    )
    return self._call(
        "video", text, video=video, options={**options, **settings}, description=prompt
    )


def track(
    self: Session,
    video: str | Path,
    prompt: str | Sequence[str] | None = None,
    *,
    fps: float = 1.0,
    start: float | None = None,
    end: float | None = None,
    task: str = "detect",
    lost_s: float = 2.0,
    concurrency: int | None = None,
    route: str = "auto",
    **options: Any,
) -> VideoResult:
    """Track objects through a local video: detect (or ``task="segment"``) on ``fps``
    frames per second of ``[start, end)`` and link the answers into tracks with ByteTrack.

    ``frames`` of the result holds a :class:`~vlmkit.FrameDetections` (frame index,
    timestamp, detections in video pixels) per sampled frame, each detection with its
    ``tracker_id``; ``events`` spans each track.
    Frames are streamed, never all held; with ``cache=`` on the session a re-run pays no
    finished frame again. ``route``: ``"frames"`` (a detect request per sampled frame),
    ``"native"`` (one video request for boxes at the sampled times, for backends that
    declare it, such as Gemini) or ``"auto"`` (frames where declared). See
    :mod:`vlmkit.tracking` (needs ``vlmkit[track]``).
    """
    from vlmkit.tracking import track

    return track(
        self,
        video,
        prompt,
        fps=fps,
        start=start,
        end=end,
        task=task,
        lost_s=lost_s,
        concurrency=concurrency,
        route=route,
        **options,
    )

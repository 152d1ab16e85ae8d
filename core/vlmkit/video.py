"""Video helpers: probing, sampling frames at a steady rate, timestamps and MIME types.

Backends that take frames (local models) call :func:`sample_frames` and label each frame with
:func:`format_timestamp`; backends that upload whole files use :func:`video_mime_type` and
:func:`probe_video` for validation. Decoding uses PyAV, imported only when needed. Frames come
back upright: a display rotation recorded by the phone that shot the video is applied.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import attrs
from PIL import Image

from vlmkit.errors import ConfigError, MediaError

if TYPE_CHECKING:
    import av.container

__all__ = [
    "VIDEO_MIME_TYPES",
    "VIDEO_SUFFIXES",
    "VideoFrame",
    "VideoInfo",
    "format_timestamp",
    "is_video_path",
    "iter_frames",
    "probe_video",
    "sample_frames",
    "video_mime_type",
]

#: MIME type of each video suffix (lower case, with the dot).
VIDEO_MIME_TYPES: Mapping[str, str] = MappingProxyType(
    {
        ".mp4": "video/mp4",
        ".m4v": "video/mp4",
        ".mov": "video/quicktime",
        ".webm": "video/webm",
        ".mpeg": "video/mpeg",
        ".mpg": "video/mpeg",
        ".avi": "video/avi",
        ".flv": "video/x-flv",
        ".wmv": "video/wmv",
        ".3gp": "video/3gpp",
    }
)
VIDEO_SUFFIXES: frozenset[str] = frozenset(VIDEO_MIME_TYPES)

_SEEK_GAP_S = 3.0  # seek instead of decoding through gaps longer than this
_TRANSPOSE_FOR_ROTATION = {
    90: Image.Transpose.ROTATE_90,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_270,
}


@attrs.frozen(kw_only=True)
class VideoInfo:
    """What :func:`probe_video` learned about a video's first video stream.

    ``width`` and ``height`` are of the upright picture (after ``rotation``, the counter-clockwise
    display rotation in degrees). ``frame_count`` is estimated from duration × fps when the
    container does not record it.
    """

    duration_s: float
    fps: float
    frame_count: int
    width: int
    height: int
    codec: str
    rotation: int = 0


@attrs.frozen(kw_only=True)
class VideoFrame:
    """One decoded frame: its time in seconds from the start of the video and its RGB pixels."""

    timestamp_s: float
    image: Image.Image = attrs.field(eq=False)


def video_mime_type(path: str | os.PathLike[str]) -> str | None:
    """The MIME type for ``path``'s suffix (``video/mp4`` ...), or ``None`` if not a video name."""
    return VIDEO_MIME_TYPES.get(Path(path).suffix.lower())


def is_video_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` has a video suffix (by name only; the file is not opened)."""
    return video_mime_type(path) is not None


def format_timestamp(seconds: float) -> str:
    """``mm:ss`` for a time in seconds (``h:mm:ss`` from one hour on), rounded down."""
    value = float(seconds)
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"a timestamp must be finite and non-negative, got {seconds!r}")
    total = int(value + 1e-9)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes:02d}:{secs:02d}"


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Read duration, frame rate, frame count, size and codec of a video file."""
    with _open_video(path) as (container, name):
        return _probe(container, name)


def sample_frames(
    path: str | os.PathLike[str],
    *,
    fps: float | None = 1.0,
    max_frames: int = 32,
    start_s: float | None = None,
    end_s: float | None = None,
) -> list[VideoFrame]:
    """Decode frames evenly spaced at ``fps`` within ``[start_s, end_s)``, at most ``max_frames``.

    When more than ``max_frames`` would be needed (or ``fps`` is ``None``), ``max_frames`` frames
    are spread evenly over the range instead. Each target time gets the first frame shown at or
    after it (within half a frame); a frame is never returned twice. Timestamps are seconds from
    the start of the video.
    """
    if fps is not None and (isinstance(fps, bool) or not fps > 0 or not math.isfinite(fps)):
        raise ConfigError(f"fps must be a positive number or None, got {fps!r}")
    if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1:
        raise ConfigError(f"max_frames must be a positive integer, got {max_frames!r}")
    for label, value in (("start_s", start_s), ("end_s", end_s)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise ConfigError(f"{label} must be a non-negative number of seconds, got {value!r}")
    if start_s is not None and end_s is not None and end_s <= start_s:
        raise ConfigError(f"end_s ({end_s}) must be after start_s ({start_s})")

    return list(iter_frames(path, fps=fps, max_frames=max_frames, start_s=start_s, end_s=end_s))


def iter_frames(
    path: str | os.PathLike[str],
    *,
    fps: float | None = 1.0,
    max_frames: int | None = 32,
    start_s: float | None = None,
    end_s: float | None = None,
) -> Iterator[VideoFrame]:
    """Like :func:`sample_frames`, but yields the frames one at a time as they are decoded, so
    memory stays flat however long the video; ``max_frames=None`` takes every ``fps`` target.

    The arguments are checked, and the file opened, when iteration starts.
    """
    if fps is not None and (isinstance(fps, bool) or not fps > 0 or not math.isfinite(fps)):
        raise ConfigError(f"fps must be a positive number or None, got {fps!r}")
    if fps is None and max_frames is None:
        raise ConfigError("give fps, max_frames or both")
    if max_frames is not None and (
        isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1
    ):
        raise ConfigError(f"max_frames must be a positive integer, got {max_frames!r}")
    for label, value in (("start_s", start_s), ("end_s", end_s)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise ConfigError(f"{label} must be a non-negative number of seconds, got {value!r}")
    if start_s is not None and end_s is not None and end_s <= start_s:
        raise ConfigError(f"end_s ({end_s}) must be after start_s ({start_s})")

    with _open_video(path) as (container, name):
        info = _probe(container, name)
        start = float(start_s or 0.0)
        end = info.duration_s if end_s is None else min(float(end_s), info.duration_s)
        if start >= end:
            raise ConfigError(
                f"start_s={start:g} is at or past the end of {name} ({info.duration_s:g} s)"
            )
        limit = max_frames if max_frames is not None else 2**62
        targets = _targets(start, end, fps=fps, max_frames=limit, info=info)
        try:
            yield from _decode_at(container, targets, end=end, info=info)
        except MediaError:
            raise
        except Exception as err:  # PyAV decode errors: InvalidDataError, ...
            raise MediaError(
                f"{name}: could not decode frames ({type(err).__name__}: {err}); the file may be "
                "damaged — re-export or re-encode it",
                source=name,
            ) from err


def _targets(
    start: float, end: float, *, fps: float | None, max_frames: int, info: VideoInfo
) -> list[float]:
    span = end - start
    if fps is not None:
        count = max(1, math.ceil(span * fps - 1e-9))
        if count <= max_frames:
            return [start + k / fps for k in range(count)]
        count = max_frames
    else:
        count = min(max_frames, max(1, round(span * info.fps))) if info.fps > 0 else max_frames
    return [start + k * span / count for k in range(count)]


def _decode_at(
    container: av.container.InputContainer, targets: list[float], *, end: float, info: VideoInfo
) -> Iterator[VideoFrame]:
    """Decode the frame shown at each target time, seeking across long gaps (one at a time)."""
    stream = container.streams.video[0]
    time_base = float(stream.time_base) if stream.time_base else 0.0
    origin = stream.start_time * time_base if stream.start_time is not None else 0.0
    tolerance = 0.5 / info.fps if info.fps > 0 else 1e-3
    index = 0
    position = 0.0  # where sequential decoding stands, in seconds from the start
    seeking = time_base > 0
    while index < len(targets):
        target = targets[index]
        sought_from = None
        if seeking and target - position > _SEEK_GAP_S:
            container.seek(int((target + origin) / time_base), stream=stream, backward=True)
            sought_from = position
        reached_end = True
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            when = float(frame.time) - origin
            if sought_from is not None:
                if when <= sought_from:  # keyframes are too sparse: seeking only goes back
                    seeking = False
                sought_from = None
            position = when
            if when >= end:
                break
            if when < targets[index] - tolerance:
                continue  # not needed: skip without converting
            yield VideoFrame(timestamp_s=max(when, 0.0), image=_upright(frame))
            while index < len(targets) and targets[index] <= when + tolerance:
                index += 1
            if index >= len(targets) or (seeking and targets[index] - when > _SEEK_GAP_S):
                reached_end = False
                break
        if reached_end:
            break


def _upright(frame: Any) -> Image.Image:
    image = frame.to_image()
    rotation = round(getattr(frame, "rotation", 0) or 0) % 360
    method = _TRANSPOSE_FOR_ROTATION.get(rotation)
    return image.transpose(method) if method is not None else image


@contextmanager
def _open_video(
    path: str | os.PathLike[str],
) -> Iterator[tuple[av.container.InputContainer, str]]:
    name = os.fspath(path)
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    target = Path(name)
    if not target.exists():
        raise MediaError(f"{name}: no such file; check the path", source=name)
    if target.is_dir():
        raise MediaError(f"{name}: is a directory, not a video file", source=name)
    if target.stat().st_size == 0:
        raise MediaError(f"{name}: the file is empty (0 bytes)", source=name)
    import av

    try:
        container = av.open(name, mode="r")
    except Exception as err:  # av.error.InvalidDataError, PermissionError, ...
        raise MediaError(
            f"{name}: not a readable video ({type(err).__name__}: {err}); use MP4, MOV, WEBM, "
            "MPEG, AVI, FLV, WMV or 3GP",
            source=name,
        ) from err
    try:
        if container.format.name == "image2" or container.format.name.endswith("_pipe"):
            raise MediaError(
                f"{name}: is a still image, not a video; use vlmkit.media.load_image", source=name
            )
        if not container.streams.video:
            raise MediaError(f"{name}: has no video stream (audio only?)", source=name)
        container.streams.video[0].thread_type = "AUTO"  # frame threads; set before decoding
        yield container, name
    finally:
        container.close()


def _probe(container: av.container.InputContainer, name: str) -> VideoInfo:
    import av

    stream = container.streams.video[0]
    time_base = stream.time_base
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    if stream.duration is not None and time_base:
        duration = float(stream.duration * time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    else:
        duration = _scan_duration(container)
    if duration <= 0:
        raise MediaError(f"{name}: could not tell the video's duration", source=name)
    frame_count = stream.frames or (round(duration * fps) if fps else 0)
    if not fps and frame_count:
        fps = frame_count / duration
    codec = stream.codec_context.name
    width, height = stream.codec_context.width, stream.codec_context.height
    try:
        rotation = _first_frame_rotation(container)
    except Exception as err:  # the first frame does not decode
        raise MediaError(
            f"{name}: could not decode the first frame ({type(err).__name__}: {err})", source=name
        ) from err
    if rotation in (90, 270):
        width, height = height, width
    return VideoInfo(
        duration_s=duration,
        fps=fps,
        frame_count=int(frame_count),
        width=int(width),
        height=int(height),
        codec=str(codec),
        rotation=rotation,
    )


def _scan_duration(container: av.container.InputContainer) -> float:
    """Duration from packet timestamps, for containers that do not record one (no decoding)."""
    stream = container.streams.video[0]
    first, last = None, None
    for packet in container.demux(stream):
        if packet.pts is None:
            continue
        stop = packet.pts + (packet.duration or 0)
        first = packet.pts if first is None else min(first, packet.pts)
        last = stop if last is None else max(last, stop)
    container.seek(0)
    if first is None or last is None or not stream.time_base:
        return 0.0
    return float((last - first) * stream.time_base)


def _first_frame_rotation(container: av.container.InputContainer) -> int:
    """Display rotation (counter-clockwise degrees, 0/90/180/270) read from the first frame."""
    stream = container.streams.video[0]
    rotation = 0
    try:
        for frame in container.decode(stream):
            rotation = round(getattr(frame, "rotation", 0) or 0) % 360
            break
    finally:
        container.seek(0)
    return rotation

"""The native tracking route: one ``video`` request for boxes at timestamps, linked by ByteTrack.

A backend that declares ``"native"`` in ``BackendInfo.track_routes`` answers a single
:meth:`vlmkit.Session.video` request (JSON mode; the clip, ``fps`` and offsets as for any video
question) with the boxes of the things asked for at each of the timestamps the prompt lists:

    [{"time": "00:01.5", "boxes": [{"box_2d": [ymin, xmin, ymax, xmax], "label": "car"}]}, ...]

Boxes are in the backend's declared convention (``yxyx-1000`` for Gemini), parsed by the same
normalization layer as an image's, in the video's own pixels. The prompt is
``Backend.track_video_prompt(things, times)`` when the backend words its own (the Gemini plugin
does), else :data:`TRACK_VIDEO` in Google's spatial-understanding phrasing. Every asked time
becomes one frame (``index`` = the source frame shown then): a time the answer leaves out is a
frame with no detection, an answered time that was not asked for is skipped and counted in the
first frame's report. The frames go through the same ByteTrack linker as the ``frames`` route.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from vlmkit.errors import ConfigError, ParseError
from vlmkit.types import ParseReport, SkippedItem

if TYPE_CHECKING:
    from vlmkit.session import Session
    from vlmkit.tracking import TrackedFrame
    from vlmkit.types import VideoResult

__all__ = ["TRACK_VIDEO", "format_time", "iter_native_track", "native_frames", "track_times"]

#: The default "track in video" prompt (``{things}``: what to find; ``{times}``: the timestamps).
TRACK_VIDEO = (
    "Track the {things} through this video. For each of these timestamps: {times}, give the 2D "
    "bounding boxes of the {things} visible at that moment. Output a JSON list with one entry "
    'per timestamp, where each entry contains the timestamp in the key "time" (MM:SS.s, from '
    'the start of the video) and a list in the key "boxes" where each entry contains the 2D '
    'bounding box in the key "box_2d" as [ymin, xmin, ymax, xmax] normalized to 0-1000 and the '
    'text label in the key "label". Keep the same label for the same object at every timestamp.'
)
_TIME_KEYS = ("time", "timestamp", "t")
_BOX_KEYS = ("boxes", "objects", "detections", "items")


def format_time(seconds: float) -> str:
    """``MM:SS.s`` (``H:MM:SS.s`` from one hour on), to a tenth of a second."""
    tenths = round(seconds * 10)
    whole, tenth = divmod(tenths, 10)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}.{tenth}"
    return f"{minutes:02d}:{secs:02d}.{tenth}"


def track_times(
    duration_s: float, *, fps: float, start: float | None, end: float | None
) -> list[float]:
    """The times to ask for: ``fps`` per second of ``[start, end)``, rounded to tenths."""
    first = float(start or 0.0)
    last = duration_s if end is None else min(float(end), duration_s)
    if first >= last:
        raise ConfigError(f"start={first:g} is at or past the end of the video ({duration_s:g} s)")
    count = max(1, math.ceil((last - first) * fps - 1e-9))
    return [round(first + k / fps, 1) for k in range(count)]


def _things(prompt: str | Sequence[str] | None) -> str:
    if prompt is None:
        return "prominent objects"
    if isinstance(prompt, str):
        return prompt
    names = [str(p) for p in prompt]
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]


def native_frames(
    text: str,
    times: Sequence[float],
    *,
    step_s: float,
    video_fps: float,
    size: tuple[int, int],
    convention: Any,
) -> list[TrackedFrame]:
    """The frames (untracked) in a native answer ``text``: one per asked time (see the module)."""
    from vlmkit.parsing import extract_json, parse, parse_timestamp
    from vlmkit.tracking import TrackedFrame

    try:
        found = extract_json(text)
    except ParseError as err:
        raise ParseError(
            f"the tracking answer holds no JSON list of timed boxes ({err})", raw_text=text
        ) from err
    entries = found.value if isinstance(found.value, list) else [found.value]
    tolerance = 0.5 * step_s
    answered: dict[int, Any] = {}
    skipped: list[SkippedItem] = list(found.unreadable)
    for position, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            continue
        key = next((k for k in _TIME_KEYS if k in entry), None)
        boxes = next((entry[k] for k in _BOX_KEYS if k in entry), None)
        try:
            if key is None or not isinstance(boxes, list):
                raise ParseError('no "time" and "boxes"', reason="entry")
            when = parse_timestamp(entry[key])
        except ParseError as err:
            skipped.append(SkippedItem(index=position, reason=str(err), excerpt=str(entry)[:80]))
            continue
        nearest = min(range(len(times)), key=lambda i: abs(times[i] - when))
        if abs(times[nearest] - when) > tolerance:
            reason = f"time {when:g} s was not asked for"
            skipped.append(SkippedItem(index=position, reason=reason, excerpt=str(entry)[:80]))
            continue
        answered[nearest] = boxes
    frames = []
    for i, when in enumerate(times):
        detections = parse(
            json.dumps(answered.get(i, [])),
            task="detect",
            image_size=size,
            convention=convention,
        )
        if i == 0 and (skipped or found.truncated):
            report = detections.report + ParseReport(
                skipped=tuple(skipped), truncated=found.truncated
            )
            detections = attrs.evolve(detections, report=report)
        index = round(when * video_fps) if video_fps > 0 else i
        frames.append(TrackedFrame(index=index, timestamp_s=when, detections=detections))
    return frames


def iter_native_track(
    session: Session,
    video: str | os.PathLike[str],
    prompt: str | Sequence[str] | None = None,
    *,
    fps: float = 1.0,
    start: float | None = None,
    end: float | None = None,
    lost_s: float = 2.0,
    on_answer: Callable[[VideoResult], None] | None = None,
    **options: Any,
) -> Iterator[TrackedFrame]:
    """Track through ``video`` with one ``video`` request (see the module); yield the frames
    in order, linked by ByteTrack. The request's provenance and usage go with the first frame.

    ``on_answer`` is called with the model's answer as soon as it arrives, before it is parsed:
    a run keeps it (:mod:`vlmkit.videorun`), so a failure after that never pays for it again."""
    from vlmkit.tracking import _Linker
    from vlmkit.video import probe_video

    if not 0 < fps <= 10:
        raise ConfigError(
            f"the native route asks for times to a tenth of a second: fps must be in (0, 10], "
            f"got {fps!r}; use route='frames' for a higher rate"
        )
    name = os.fspath(video)
    info = probe_video(name)
    times = track_times(info.duration_s, fps=float(fps), start=start, end=end)
    backend = session.backend
    wording = getattr(backend, "track_video_prompt", None)
    things = _things(prompt)
    listed = ", ".join(format_time(t) for t in times)
    text = (
        wording(things, times)
        if callable(wording)
        else TRACK_VIDEO.format(things=things, times=listed)
    )
    answer = session.video(name, text, fps=float(fps), start=start, end=end, json=True, **options)
    if answer.raw_text is not None and on_answer is not None:
        on_answer(answer)
    if answer.raw_text is None:
        raise ParseError(
            f"{name}: the model gave no answer to the tracking request (finish: {answer.finish})",
            reason="empty",
        )
    frames = native_frames(
        answer.raw_text,
        times,
        step_s=1.0 / float(fps),
        video_fps=info.fps,
        size=(info.width, info.height),
        convention=backend.convention,
    )
    if frames and answer.provenance is not None:
        first = frames[0]
        frames[0] = attrs.evolve(
            first, detections=attrs.evolve(first.detections, provenance=answer.provenance)
        )
    linker = _Linker(float(lost_s))
    for frame in frames:
        done = linker.push(frame)
        if done is not None:
            yield done
    last = linker.flush()
    if last is not None:
        yield last

"""Tracking objects through a video: detect on sampled frames, link detections with ByteTrack.

Frames are decoded one at a time (:func:`vlmkit.video.iter_frames`) and each sampled frame goes
through the session's normal ``detect`` (or ``segment``) pipeline — answer cache, usage
accounting, retries — several at once for backends that take concurrent requests. The answers
are linked into tracks in frame order by ByteTrack from Roboflow's ``trackers`` package
(``pip install "vlmkit[track]"``): supervision deprecated its own ``sv.ByteTrack`` in 0.28 for
``trackers``, kept by the same people, and the supervision 0.31 vlmkit requires no longer has
it; ``trackers`` takes ``sv.Detections`` and follows the published ByteTrack algorithm.

Memory stays flat in the length of the video: only the frames in flight are held, never the
whole clip. :func:`write_annotated_video` and :func:`mot_text` turn tracked frames into an
annotated MP4 (at the source's frame rate, boxes held between samples) and a MOT-Challenge file.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, TYPE_CHECKING, Any

import attrs
import numpy as np

from vlmkit.errors import ConfigError, VlmkitError
from vlmkit.types import Detections, FrameDetections, LabelMap, TimedEvent, Usage, VideoResult

if TYPE_CHECKING:
    from PIL import Image

    from vlmkit.session import Session

__all__ = [
    "TRACK_TASKS",
    "FrameAnswer",
    "TrackedFrame",
    "check_track_arguments",
    "choose_route",
    "frame_workers",
    "iter_track",
    "link_answers",
    "mot_text",
    "track",
    "tracker_ids",
    "video_result",
    "write_annotated_video",
]

#: The tasks whose answers can be tracked.
TRACK_TASKS = ("detect", "segment")

#: One sampled frame: its index in the video (from 0), its time in seconds, and its detections
#: in original video pixels, each with its ``tracker_id`` (the entries of ``VideoResult.frames``).
TrackedFrame = FrameDetections


def tracker_ids(detections: Detections) -> list[int | None]:
    """The track id of each detection (``None`` where the tracker gave it none)."""
    return list(detections.tracker_ids)


def _new_tracker(lost_s: float) -> Any:
    try:
        from trackers import ByteTrackTracker
    except ImportError as err:
        raise ConfigError(
            'tracking needs the trackers package (ByteTrack); pip install "vlmkit[track]"'
        ) from err
    # every sampled frame costs a model call: a detection seen once already deserves an id
    # (ids of first sightings are filled in one frame later, see _Linker)
    return ByteTrackTracker(
        lost_track_buffer=max(1, round(lost_s * 30)),  # counted in 30 fps frames
        frame_rate=30.0,
        track_activation_threshold=0.25,
        minimum_consecutive_frames=1,
        high_conf_det_threshold=0.5,
    )


class _Linker:
    """Feeds detections to ByteTrack in frame order and writes the ids back.

    ByteTrack gives a new track its id only when it is matched again on the next frame, so the
    first sighting of every object would have none. The linker holds each frame back by one
    step and gives those first sightings the id their track got on the following frame.
    """

    def __init__(self, lost_s: float) -> None:
        self._tracker = _new_tracker(lost_s)
        self._labels = LabelMap()
        self._held: tuple[TrackedFrame, list[int | None], dict[int, Any]] | None = None

    def push(self, frame: TrackedFrame) -> TrackedFrame | None:
        """Link ``frame``; return the previous frame, now with its ids complete."""
        ids, spawned = self._update(frame)
        done = self._release()
        self._held = (frame, ids, spawned)
        return done

    def flush(self) -> TrackedFrame | None:
        return self._release()

    def _release(self) -> TrackedFrame | None:
        if self._held is None:
            return None
        frame, ids, spawned = self._held
        self._held = None
        for position, tracklet in spawned.items():
            tracker_id = int(getattr(tracklet, "tracker_id", -1))
            if tracker_id >= 0:
                ids[position] = tracker_id
        items = [attrs.evolve(d, tracker_id=ids[i]) for i, d in enumerate(frame.detections)]
        return attrs.evolve(frame, detections=attrs.evolve(frame.detections, items=items))

    def _update(self, frame: TrackedFrame) -> tuple[list[int | None], dict[int, Any]]:
        import supervision as sv

        detections = frame.detections
        n = len(detections)
        scores = detections.scores
        confidence = scores.astype(np.float32) if n and not np.isnan(scores).any() else None
        given = sv.Detections(
            xyxy=detections.xyxy.astype(np.float32) if n else np.zeros((0, 4), np.float32),
            confidence=confidence,
            class_id=detections.class_ids(self._labels),
            data={"vlmkit_index": np.arange(n)},
        )
        previous = list(self._tracker.tracks)  # alive while compared: no reused id()
        before = {id(t) for t in previous}
        tracked = self._tracker.update(given, timestamp=frame.timestamp_s)
        ids: list[int | None] = [None] * n
        unnamed: list[int] = []
        if len(tracked):
            for position, tracker_id in zip(
                tracked.data["vlmkit_index"], tracked.tracker_id, strict=True
            ):
                if tracker_id >= 0:
                    ids[int(position)] = int(tracker_id)
                else:
                    unnamed.append(int(position))
        spawned: dict[int, Any] = {}
        new = [t for t in self._tracker.tracks if id(t) not in before]
        del previous
        for tracklet in new:  # a new track starts at its detection's box: find which one
            box = np.asarray(tracklet.get_state_bbox(), dtype=np.float64)
            best = min(
                (p for p in unnamed if p not in spawned),
                key=lambda p: float(np.abs(detections.xyxy[p] - box).sum()),
                default=None,
            )
            if best is not None:
                spawned[best] = tracklet
        return ids, spawned


def frame_workers(session: Session, concurrency: int | None) -> int:
    """How many frames to have in flight: ``concurrency``, or what the backend takes at once."""
    if concurrency is not None:
        if isinstance(concurrency, bool) or int(concurrency) < 1:
            raise ConfigError(f"concurrency must be at least 1, got {concurrency!r}")
        return int(concurrency)
    backend = session.backend
    return max(1, int(getattr(backend, "concurrency", 1)), int(getattr(backend, "batch_size", 1)))


#: How one sampled frame is answered: ``(frame index, timestamp in seconds, picture)`` to the
#: detections in that picture's pixels (:func:`link_answers`).
FrameAnswer = Callable[[int, float, "Image.Image"], Detections]


def check_track_arguments(*, task: str, fps: float, lost_s: float) -> None:
    """Raise :class:`~vlmkit.ConfigError` for a task, rate or lost time tracking cannot use."""
    if task not in TRACK_TASKS:
        raise ConfigError(f"task must be one of {', '.join(TRACK_TASKS)}, got {task!r}")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps < 1000:
        raise ConfigError(f"fps must be a positive number of frames per second, got {fps!r}")
    if not isinstance(lost_s, (int, float)) or lost_s <= 0:
        raise ConfigError(f"lost_s must be a positive number of seconds, got {lost_s!r}")


def choose_route(session: Session, route: str = "auto", task: str = "detect") -> str:
    """The tracking route to take: ``"frames"`` or ``"native"`` (see
    :data:`vlmkit.records.TRACK_ROUTES`).

    ``"auto"`` takes ``frames`` — a detect request per sampled frame, the most accurate boxes —
    when the backend declares it, else ``native``. A route the backend does not declare is an
    :class:`~vlmkit.UnsupportedTask` naming the installed backends that do.
    """
    from vlmkit.errors import UnsupportedTask

    if route not in ("auto", "frames", "native"):
        raise ConfigError(f"route must be auto, frames or native, got {route!r}")
    info = session.backend_info
    declared = info.track_routes
    if route == "auto":
        route = "frames" if "frames" in declared or "native" not in declared else "native"
    if route not in declared:
        others = tuple(
            name
            for name, other in session.backends().items()
            if route in other.track_routes and name != info.name
        )
        hint = f"; installed backends that can: {', '.join(others)}" if others else ""
        raise UnsupportedTask(
            f"backend {info.name!r} does not track by the {route!r} route (it declares: "
            f"{', '.join(sorted(declared)) or 'none'}){hint}",
            task="track",
            alternatives=others,
        )
    if route == "native" and task != "detect":
        raise ConfigError(
            f"the native route tracks boxes only, not {task}; use route='frames' for masks"
        )
    return route


def iter_track(
    session: Session,
    video: str | os.PathLike[str],
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
) -> Iterator[TrackedFrame]:
    """Yield each sampled frame of ``video`` with its tracked detections, in order.

    ``fps`` frames per second are sampled within ``[start, end)`` seconds; each goes through
    ``session.detect`` (or ``segment`` with ``task="segment"``) with ``prompt`` and ``options``;
    up to ``concurrency`` frames (default: the backend's own concurrency) are in flight. A track
    lost for longer than ``lost_s`` seconds ends; an object seen again later gets a new id.
    ``route="native"`` instead asks the backend once for boxes at those times
    (:mod:`vlmkit.nativetrack`); ``"auto"`` picks as :func:`choose_route` says.
    """
    from vlmkit.video import probe_video

    check_track_arguments(task=task, fps=fps, lost_s=lost_s)
    workers = frame_workers(session, concurrency)
    if choose_route(session, route, task) == "native":
        from vlmkit.nativetrack import iter_native_track

        yield from iter_native_track(
            session, video, prompt, fps=fps, start=start, end=end, lost_s=lost_s, **options
        )
        return
    name = os.fspath(video)
    probe_video(name)  # an unreadable video fails here, before any model call
    call: Any = session.detect if task == "detect" else session.segment

    def answer(_index: int, _timestamp: float, image: Image.Image) -> Detections:
        detections: Detections = call(image, prompt, **options)
        return detections

    yield from link_answers(
        name,
        answer,
        fps=float(fps),
        start=start,
        end=end,
        lost_s=float(lost_s),
        workers=workers,
    )


def link_answers(
    video: str | os.PathLike[str],
    answer: FrameAnswer,
    *,
    fps: float,
    start: float | None = None,
    end: float | None = None,
    lost_s: float = 2.0,
    workers: int = 1,
) -> Iterator[TrackedFrame]:
    """Decode ``fps`` frames per second of ``[start, end)``, have ``answer`` answer each (up to
    ``workers`` at once, in threads) and yield the frames in order with their detections linked
    by ByteTrack. :func:`iter_track` answers through the session; a run folder
    (:mod:`vlmkit.videorun`) answers from its ledger first."""
    from vlmkit.video import iter_frames, probe_video

    name = os.fspath(video)
    info = probe_video(name)
    linker = _Linker(float(lost_s))

    def link(index: int, timestamp: float, future: Future[Detections]) -> TrackedFrame | None:
        try:
            detections = future.result()
        except VlmkitError as err:
            err.add_note(f"while tracking {name} at {timestamp:.3f} s")
            raise
        return linker.push(TrackedFrame(index=index, timestamp_s=timestamp, detections=detections))

    frames = iter_frames(name, fps=float(fps), max_frames=None, start_s=start, end_s=end)
    pending: deque[tuple[int, float, Future[Detections]]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vlmkit-track") as pool:
        try:
            for frame in frames:
                index = round(frame.timestamp_s * info.fps) if info.fps > 0 else 0
                future = pool.submit(answer, index, frame.timestamp_s, frame.image)
                pending.append((index, frame.timestamp_s, future))
                del frame  # the pool holds the image until it is sent; nothing else does
                if len(pending) >= workers:
                    done = link(*pending.popleft())
                    if done is not None:
                        yield done
            while pending:
                done = link(*pending.popleft())
                if done is not None:
                    yield done
            last = linker.flush()
            if last is not None:
                yield last
        finally:
            for _, _, future in pending:
                future.cancel()


def track(
    session: Session,
    video: str | os.PathLike[str],
    prompt: str | Sequence[str] | None = None,
    **arguments: Any,
) -> VideoResult:
    """Track objects through ``video`` (see :func:`iter_track`) into a :class:`VideoResult`
    (see :func:`video_result`)."""
    from vlmkit.video import probe_video

    duration = probe_video(os.fspath(video)).duration_s
    return video_result(iter_track(session, video, prompt, **arguments), duration_s=duration)


def video_result(frames: Iterable[TrackedFrame], *, duration_s: float | None = None) -> VideoResult:
    """Tracked frames as a :class:`VideoResult`: ``frames`` holds each sampled frame (index,
    timestamp, detections), ``events`` one ``[first seen, last seen]`` event per track labelled
    ``"<label> #<id>"``, ``usage`` the sum over the frames."""
    pairs: list[TrackedFrame] = []
    spans: dict[int, tuple[float, float, str]] = {}
    for tracked in frames:
        pairs.append(tracked)
        for detection in tracked.detections:
            tracker_id = detection.tracker_id
            if tracker_id is None:
                continue
            first = spans.get(tracker_id, (tracked.timestamp_s, 0.0, detection.label))[0]
            spans[tracker_id] = (first, tracked.timestamp_s, detection.label)
    events = [
        TimedEvent(start=first, end=last, text=f"{label} #{tid}", label=f"{label} #{tid}")
        for tid, (first, last, label) in sorted(spans.items(), key=lambda kv: (kv[1][0], kv[0]))
    ]
    usage = Usage.zero()
    for frame in pairs:
        usage = usage + frame.detections.usage
    provenance = pairs[0].detections.provenance if pairs else None
    if provenance is not None:
        provenance = attrs.evolve(provenance, task="track", raw_text=None, usage=usage)
    return VideoResult(
        text=f"{len(spans)} track(s) over {len(pairs)} sampled frame(s)",
        events=events,
        frames=pairs,
        duration_s=duration_s,
        provenance=provenance,
    )


def mot_text(frames: Iterable[TrackedFrame]) -> str:
    """MOT-Challenge lines ``frame,id,x,y,w,h,conf,-1,-1,-1`` (frames from 1, pixels, conf 1
    where the model gave no score) for every tracked detection."""
    lines = []
    for frame in frames:
        if frame.index is None:
            raise ConfigError(
                f"the frame at {frame.timestamp_s:g} s has no frame index, which MOT rows need; "
                "pass frames from vlmkit.tracking.iter_track or Session.track"
            )
        for detection in frame.detections:
            tracker_id = detection.tracker_id
            if tracker_id is None:
                continue
            x1, y1, x2, y2 = detection.box.xyxy
            score = 1.0 if detection.score is None else detection.score
            lines.append(
                f"{frame.index + 1},{tracker_id},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},"
                f"{score:.4f},-1,-1,-1"
            )
    return "".join(line + "\n" for line in lines)


def write_annotated_video(
    video: str | os.PathLike[str],
    frames: Sequence[TrackedFrame],
    out: IO[bytes],
    *,
    start: float | None = None,
    end: float | None = None,
) -> int:
    """Write ``video`` with the tracked boxes, masks, labels and track ids drawn on it as an
    MP4 to the binary file ``out`` (seekable); return the number of frames written.

    Every frame of ``[start, end)`` is written at the source's frame rate; a frame between two
    samples shows the boxes (and masks, when tracking ``segment``) of the latest sample at or
    before it: held, not moved. Frames are decoded one at a time; masks stay box-local.
    """
    import av
    import supervision as sv

    from vlmkit.video import iter_frames, probe_video

    name = os.fspath(video)
    info = probe_video(name)
    rate = info.fps if info.fps > 0 else 25.0
    width, height = info.width - info.width % 2, info.height - info.height % 2  # yuv420p
    boxes = sv.BoxAnnotator(color_lookup=sv.ColorLookup.TRACK)
    masks = sv.MaskAnnotator(color_lookup=sv.ColorLookup.TRACK, opacity=0.5)
    labels = sv.LabelAnnotator(color_lookup=sv.ColorLookup.TRACK, text_scale=0.4)
    samples = sorted(frames, key=lambda f: f.timestamp_s)
    tolerance = 0.5 / rate
    position, current, shown = 0, None, None
    written = 0
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(out, "w", format="mp4") as container:
        stream: Any = container.add_stream(codec, rate=_rate(rate))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in iter_frames(name, fps=rate, max_frames=None, start_s=start, end_s=end):
            while (
                position < len(samples)
                and samples[position].timestamp_s <= frame.timestamp_s + tolerance
            ):
                current, shown = samples[position], None
                position += 1
            pixels = np.asarray(frame.image.convert("RGB"))[:height, :width]
            if current is not None and len(current.detections):
                if shown is None:
                    shown = _drawable(current.detections, (width, height))
                scene = pixels.copy()
                if shown[0].mask is not None:
                    scene = masks.annotate(scene, shown[0])
                scene = boxes.annotate(scene, shown[0])
                pixels = labels.annotate(scene, shown[0], labels=shown[1])
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            for packet in stream.encode(picture):
                container.mux(packet)
            written += 1
        for packet in stream.encode():
            container.mux(packet)
    return written


def _drawable(detections: Detections, size: tuple[int, int]) -> tuple[Any, list[str]]:
    """The tracked detections as ``sv.Detections`` for a picture of ``size`` (box-local masks
    as ``sv.CompactMask``, never full frames) and their ``label #id`` texts."""
    kept = [d for d in detections if d.tracker_id is not None]
    drawn = attrs.evolve(detections, items=kept, image_size=size).to_supervision()
    drawn.class_id = np.zeros(len(kept), dtype=int)
    texts = [f"{d.label} #{d.tracker_id}" for d in kept]
    return drawn, texts


def _rate(fps: float) -> Any:
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)

"""Track objects through a folder of videos into a run folder, resumably (``vlmkit label --task
track``).

Every answered frame is appended to the run folder's track ledger (``OUT/tracks.jsonl``,
fsynced, the format of :mod:`vlmkit.ledger`) as soon as it comes back, keyed
``VIDEO_KEY#frameN``; a re-run after a crash, a kill or Ctrl-C answers those frames from the
ledger and pays only for the rest. When a video's frames are all answered they are linked into
tracks (:func:`vlmkit.tracking.link_answers`) and its outputs — MOT file, annotated MP4, JSON
result — are staged and moved into place together (:func:`write_track_outputs`); only then is
the video itself recorded as done (key ``VIDEO_KEY``, its :class:`~vlmkit.VideoResult`), so a
finished video is skipped whole next time. On the ``frames`` route that done record holds the
tracks (``events``) but not the frames: they are the ``VIDEO_KEY#frameN`` records it follows
(the tracked frames are in the video's JSON output), so no frame is stored twice. A done record
written before that, with every frame inside, still reads. One video failing (unreadable file,
a refused request) is recorded with its reason and the run goes on; the next run tries it again,
paying only for the frames it had not answered.

On the ``native`` route (one request per video) the answer is recorded as ``VIDEO_KEY#answer``
the moment it arrives, before it is parsed. If anything fails after that — the answer does not
parse, the outputs cannot be written, a crash — the next run parses the kept answer again
through the same pipeline for free (:data:`vlmkit.budget.REPLAY`, as the image runner re-parses
a kept answer) and asks the model again only if that still fails; a request that got no answer
(a refused request, an API error) is simply asked again. An answer cut off by the token limit
fails the video (its later frames would have no boxes) and is asked again next run.

The folder is the runner's: one writer at a time (:class:`vlmkit.runlock.RunLock`), and a
``run.json`` that refuses a resumed run asking another question (:mod:`vlmkit.manifest`).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from vlmkit.errors import ConfigError, ParseError, SinkError, VlmkitError
from vlmkit.outcomes import outcome_problem
from vlmkit.types import Detections, VideoResult
from vlmkit.videosummary import TrackRunSummary, VideoOutcome

if TYPE_CHECKING:
    from PIL import Image

    from vlmkit.inputs import InputItem
    from vlmkit.ledger import Ledger, LedgerState
    from vlmkit.session import Session
    from vlmkit.tracking import TrackedFrame

__all__ = [
    "TRACK_LEDGER",
    "TrackRunSummary",
    "VideoOutcome",
    "run_tracks",
    "track_output_names",
    "write_track_outputs",
]

logger = logging.getLogger(__name__)

#: The track ledger of a run folder: answered frames and finished videos.
TRACK_LEDGER = "tracks.jsonl"
#: The key of a native-route video's kept answer: ``VIDEO_KEY#answer``.
_ANSWER_SUFFIX = "#answer"
#: The key of one answered frame's record: ``VIDEO_KEY#frameN``.
_FRAME_KEY = re.compile(r"(?P<video>.+)#frame(?P<index>\d+)")


def track_output_names(stem: str) -> dict[str, str]:
    """The file names of one video's outputs, by kind."""
    return {
        "mot": f"{stem}.mot.txt",
        "video": f"{stem}.tracked.mp4",
        "json": f"{stem}.json",
        "coco": f"{stem}.coco.json",
    }


def write_track_outputs(
    video: str | os.PathLike[str],
    frames: Sequence[TrackedFrame],
    result: VideoResult,
    out_dir: str | os.PathLike[str],
    stem: str,
    *,
    start: float | None = None,
    end: float | None = None,
    categories: Sequence[str] = (),
) -> list[Path]:
    """Write one tracked video's MOT file, annotated MP4, JSON result and per-frame COCO
    (:mod:`vlmkit.videococo`; ``categories`` fixes the first category ids) under ``out_dir`` as
    ``STEM.*``: staged under hidden names and moved into place together, none on failure."""
    from vlmkit.atomic import Staging, safe_join
    from vlmkit.serialize import result_to_dict, to_json
    from vlmkit.tracking import mot_text, write_annotated_video
    from vlmkit.video import probe_video
    from vlmkit.videococo import video_coco

    names = track_output_names(stem)
    info = probe_video(video)
    coco = video_coco(
        frames,
        video_name=Path(video).name,
        size=(info.width, info.height),
        fps=info.fps,
        categories=categories,
    )
    staging = Staging()
    try:
        staging.write_text(safe_join(out_dir, names["mot"]), mot_text(frames))
        with staging.open(safe_join(out_dir, names["video"]), "wb") as handle:
            write_annotated_video(video, frames, handle, start=start, end=end)
        staging.write_text(
            safe_join(out_dir, names["json"]), to_json(result_to_dict(result), indent=2) + "\n"
        )
        staging.write_text(safe_join(out_dir, names["coco"]), to_json(coco) + "\n")
        return list(staging.commit())  # four files
    except BaseException:
        staging.discard()
        raise


class _Counter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.paid = 0
        self.reused = 0

    def add(self, *, paid: bool, count: int = 1) -> None:
        with self._lock:
            if paid:
                self.paid += count
            else:
                self.reused += count


def run_tracks(
    session: Session,
    inputs: Iterable[str | os.PathLike[str]],
    prompt: str | Sequence[str] | None = None,
    *,
    out_dir: str | os.PathLike[str],
    fps: float = 1.0,
    task: str = "detect",
    lost_s: float = 2.0,
    concurrency: int | None = None,
    route: str = "frames",
    options: Mapping[str, Any] | None = None,
    fsync: bool = True,
) -> TrackRunSummary:
    """Track ``prompt`` through every video in ``inputs`` (files, folders, globs) into the run
    folder ``out_dir``, resuming whatever an earlier run there finished (see the module).

    ``route="native"`` asks the backend once per video (:mod:`vlmkit.nativetrack`): a video is
    then resumed whole, not frame by frame; ``"auto"`` picks as
    :func:`vlmkit.tracking.choose_route` says."""
    from vlmkit.atomic import sweep_stale_files
    from vlmkit.inputs import collect_inputs
    from vlmkit.ledger import Ledger, read_ledger
    from vlmkit.manifest import check_manifest
    from vlmkit.outcomes import usage_since
    from vlmkit.runlock import RunLock
    from vlmkit.tracking import check_track_arguments, choose_route, frame_workers
    from vlmkit.video import is_video_path

    check_track_arguments(task=task, fps=fps, lost_s=lost_s)
    route = choose_route(session, route, task)
    if route == "frames":
        session._check(task, "image")  # every frame is an image: an unsupported task fails now
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out must be a folder, but {out} is a file")
    items, skipped = collect_inputs(inputs, exclude=out, accept=is_video_path, kind="a video file")
    stems: dict[str, str] = {}
    for item in items:  # outputs are named after the video: two must not share a name
        stem = str(Path(item.key).with_suffix(""))
        if stem in stems:
            raise ConfigError(
                f"{stems[stem]} and {item.key} would write the same outputs ({stem}.*) in "
                f"{out}; rename one, or track them into separate --out folders"
            )
        stems[stem] = item.key
    options = dict(options or {})
    summary = TrackRunSummary(skipped_inputs={str(s.path): s.reason for s in skipped})
    started, usage_before = time.monotonic(), session.usage
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out):
        check_manifest(out, _manifest(session, task, prompt, fps, lost_s, route, options))
        sweep_stale_files(out)  # outputs a killed run was staging when it died
        state = read_ledger(out / TRACK_LEDGER)
        with Ledger(out / TRACK_LEDGER, fsync=fsync, state=state) as ledger:
            plan = _Plan(
                session=session,
                route=route,
                out=out,
                state=state,
                ledger=ledger,
                call=session.detect if task == "detect" else session.segment,
                prompt=prompt,
                options=options,
                fps=float(fps),
                lost_s=float(lost_s),
                workers=frame_workers(session, concurrency),
                frame_records=_frame_records(state),
            )
            try:
                for item in items:
                    summary.videos.append(_one_video(item, plan))
            finally:
                summary.usage = usage_since(usage_before, session.usage)
                summary.wall_s = time.monotonic() - started
    return summary


def _manifest(
    session: Session,
    task: str,
    prompt: str | Sequence[str] | None,
    fps: float,
    lost_s: float,
    route: str,
    options: Mapping[str, Any],
) -> dict[str, Any]:
    settings = {**options, "fps": float(fps), "lost_s": float(lost_s), "tracked": task}
    if route != "frames":  # folders of the frames route, written before routes, stay valid
        settings["route"] = route
    return {
        "version": 1,
        "task": "track",
        "prompt": prompt if isinstance(prompt, (str, type(None))) else list(prompt),
        "backend": session.backend_info.name,
        "model": getattr(session.backend, "model", None),
        "options": {k: settings[k] for k in sorted(settings)},
        "settings": session.backend_identity.get("settings", {}),
    }


@attrs.frozen(kw_only=True)
class _Plan:
    """What every video of one run shares: where it goes, the ledger, how frames are asked."""

    session: Session
    route: str
    out: Path
    state: LedgerState
    ledger: Ledger
    call: Any  # session.detect or session.segment
    prompt: str | Sequence[str] | None
    options: Mapping[str, Any]
    fps: float
    lost_s: float
    workers: int
    frame_records: Mapping[str, int]  # video key -> its answered-frame records, as read


def _frame_records(state: LedgerState) -> Counter[str]:
    """How many answered-frame records (``VIDEO_KEY#frameN``) each video has in the ledger."""
    counts: Counter[str] = Counter()
    for key in state.records:
        match = _FRAME_KEY.fullmatch(key)
        if match is not None:
            counts[match["video"]] += 1
    return counts


def _one_video(item: InputItem, plan: _Plan) -> VideoOutcome:
    from vlmkit.ledger import LedgerRecord
    from vlmkit.tracking import link_answers, video_result
    from vlmkit.video import probe_video

    finished = plan.state.get(item.key)
    if finished is not None and finished.status == "done":
        done = finished.result
        # a done record of the frames route references its frame records (one written before
        # that holds its frames itself)
        sampled = len(done.frames) if isinstance(done, VideoResult) else 0
        sampled = sampled or plan.frame_records.get(item.key, 0)
        tracks = len(done.events) if isinstance(done, VideoResult) else 0
        return VideoOutcome(
            key=item.key, status="resumed", route=plan.route, frames=sampled, tracks=tracks
        )
    counter = _Counter()

    def answer(index: int, _timestamp: float, image: Image.Image) -> Detections:
        key = f"{item.key}#frame{index}"
        record = plan.state.get(key)
        if record is not None and record.status == "done" and isinstance(record.result, Detections):
            counter.add(paid=False)
            return record.result
        detections: Detections = plan.call(image, plan.prompt, **plan.options)
        # A cut-off, blocked or empty answer is a failed frame, as it is a failed item for the
        # image runner: recorded with its reason (the next run asks again), never a done frame
        # missing its boxes.
        problem = outcome_problem(detections)
        plan.ledger.append(
            LedgerRecord(
                key=key,
                status="done" if problem is None else "failed",
                result=detections,
                image_path=str(item.path),
                image_size=detections.image_size,
                error=None if problem is None else problem[1],
                error_type=None if problem is None else problem[0],
            )
        )
        counter.add(paid=True)
        if problem is not None:
            raise ParseError(
                f"frame {index}: {problem[1]}; re-run to ask again (answered frames are kept)",
                raw_text=detections.raw_text or "",
                reason=problem[0].lower(),
            )
        return detections

    try:
        duration = probe_video(item.path).duration_s
        if plan.route == "native":
            frames = _native(item, plan, counter)
        else:
            frames = list(
                link_answers(
                    item.path, answer, fps=plan.fps, lost_s=plan.lost_s, workers=plan.workers
                )
            )
        result = video_result(frames, duration_s=duration)
        stem = str(Path(item.key).with_suffix(""))
        labels = list(plan.prompt) if isinstance(plan.prompt, (list, tuple)) else ()
        try:
            written = write_track_outputs(
                item.path, frames, result, plan.out, stem, categories=labels
            )
        except OSError as err:
            raise SinkError(
                f"could not write the outputs of {item.key} in {plan.out} ({err}); fix that and "
                "re-run: its answers are kept in the ledger"
            ) from err
    except VlmkitError as err:
        message = str(err).splitlines()[0]
        plan.ledger.append(
            LedgerRecord(
                key=item.key,
                status="failed",
                error=message,
                error_type=type(err).__name__,
                image_path=str(item.path),
            )
        )
        return VideoOutcome(
            key=item.key,
            status="failed",
            route=plan.route,
            paid=counter.paid,
            reused=counter.reused,
            error=message,
        )
    # The frames route's frames are in the ledger already (VIDEO#frameN): the done record keeps
    # the tracks and refers to them, so a long video's frames are not stored (and read) twice.
    kept = result if plan.route == "native" else attrs.evolve(result, frames=())
    plan.ledger.append(
        LedgerRecord(key=item.key, status="done", result=kept, image_path=str(item.path))
    )
    return VideoOutcome(
        key=item.key,
        status="done",
        route=plan.route,
        frames=len(frames),
        paid=counter.paid,
        reused=counter.reused,
        tracks=len(result.events),
        outputs=tuple(written),
    )


def _native(item: InputItem, plan: _Plan, counter: _Counter) -> list[TrackedFrame]:
    """The native route's frames of one video: from its answer kept in the ledger by an earlier
    run when that still parses (free), else from one request, whose answer is recorded before it
    is parsed (see the module)."""
    from vlmkit.backend import Generation
    from vlmkit.budget import REPLAY
    from vlmkit.ledger import LedgerRecord
    from vlmkit.nativetrack import iter_native_track
    from vlmkit.types import VideoResult

    def track(**extra: Any) -> list[TrackedFrame]:
        frames = list(
            iter_native_track(
                plan.session,
                item.path,
                plan.prompt,
                fps=plan.fps,
                lost_s=plan.lost_s,
                **extra,
                **plan.options,
            )
        )
        _refuse_cut_off(frames)
        return frames

    kept = plan.state.get(item.key + _ANSWER_SUFFIX)
    answer = kept.result if kept is not None else None
    if answer is not None and answer.raw_text is not None:
        # the next model call returns the kept answer: parsed again, nothing paid
        token = REPLAY.set(Generation(text=answer.raw_text, finish=answer.finish))
        try:
            frames = track()
        except ParseError as err:  # the kept answer is no use: ask again, as the image runner
            logger.info("%s: its kept answer does not parse (%s); asking again", item.key, err)
        else:
            counter.add(paid=False, count=len(frames))  # every frame read back, none paid
            return frames
        finally:
            REPLAY.reset(token)

    def keep(answer: VideoResult) -> None:
        counter.add(paid=True)
        plan.ledger.append(
            LedgerRecord(
                key=item.key + _ANSWER_SUFFIX,
                status="done",
                result=VideoResult(text="", provenance=answer.provenance),
                image_path=str(item.path),
            )
        )

    return track(on_answer=keep)


def _refuse_cut_off(frames: Sequence[TrackedFrame]) -> None:
    """A native answer cut off by the token limit leaves the frames after the cut without boxes:
    a failure (as a cut-off answer is for the image runner), never a done video missing them."""
    from vlmkit.types import FinishReason

    first = frames[0].detections if frames else None
    if first is None or not (first.report.truncated or first.finish is FinishReason.MAX_TOKENS):
        return
    detail = first.provenance.detail if first.provenance is not None else None
    raise ParseError(
        "the tracking answer was cut off by the token limit, so the frames after the cut would "
        "have no boxes; re-run to ask again, or track with a lower --fps or --route frames"
        + (f" ({detail})" if detail else ""),
        reason="truncated",
        raw_text=first.raw_text or "",
    )

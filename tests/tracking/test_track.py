"""Tracking a synthetic clip through the real google-genai SDK and the loopback fake Gemini.

The fake answers each request by finding the coloured squares in the frame it receives
(tests/tracking/clip.py), so every box the pipeline sees was computed from real decoded, sent
pixels; the clip knows where the squares truly are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("trackers")
pytest.importorskip("google.genai")

import vlmkit
from tests.tracking import clip
from vlmkit.tracking import iter_track, mot_text, tracker_ids, write_annotated_video
from vlmkit_gemini.testing import FakeGemini

LABELS = ["red square", "blue square", "green square"]
MODEL = "gemini-2.5-flash-lite"


def session(fake: FakeGemini, **options: Any) -> vlmkit.Session:
    return vlmkit.Session(
        backend="gemini-api", model=MODEL, api_key="test-key", base_url=fake.base_url, **options
    )


def generate_calls(fake: FakeGemini) -> int:
    return len(fake.requests_of("generate"))


def check_tracks(frames: list[tuple[float, Any]], *, tolerance: float = 3.0) -> dict[str, int]:
    """Every square: one id on every frame, a box within ``tolerance`` px of the truth."""
    ids: dict[str, set[int | None]] = {name: set() for name in clip.SQUARES}
    for timestamp, detections in frames:
        truth = clip.truth(timestamp)
        assert sorted(detections.labels) == sorted(f"{n} square" for n in truth), timestamp
        for detection, tracker_id in zip(detections, tracker_ids(detections), strict=True):
            name = detection.label.removesuffix(" square")
            ids[name].add(tracker_id)
            error = np.abs(np.array(detection.box.xyxy) - np.array(truth[name])).max()
            assert error <= tolerance, (timestamp, name, detection.box.xyxy, truth[name])
    assert all(len(found) == 1 and None not in found for found in ids.values()), ids
    single = {name: next(iter(found)) for name, found in ids.items()}
    assert len(set(single.values())) == len(single), single  # three different objects
    return single  # type: ignore[return-value]


def test_track_gives_every_square_one_id_for_the_whole_clip(
    video: Path, fake: FakeGemini, tmp_path: Path
) -> None:
    with session(fake, cache=tmp_path / "cache") as s:
        result = s.track(video, LABELS, fps=2)

    assert [round(t, 2) for t, _ in result.frames] == [k / 2 for k in range(20)]
    assert [f.index for f in result.frames] == [k * clip.FPS // 2 for k in range(20)]
    assert all(d.tracker_id is not None for f in result.frames for d in f.detections)
    assert not any("tracker_id" in d.attributes for f in result.frames for d in f.detections)
    assert generate_calls(fake) == 20  # one request per sampled frame
    assert all(d.image_size == (clip.WIDTH, clip.HEIGHT) for _, d in result.frames)
    ids = check_tracks(list(result.frames))
    assert {e.label for e in result.events} == {f"{n} square #{i}" for n, i in ids.items()}
    assert all(e.start == 0 and e.end == 9.5 for e in result.events)
    assert result.usage.prompt_tokens > 0

    # a re-run with the same answer cache pays for no frame again, and links the same way
    with session(fake, cache=tmp_path / "cache") as again:
        repeated = again.track(video, LABELS, fps=2)
    assert generate_calls(fake) == 20
    assert check_tracks(list(repeated.frames)) == ids


def test_clip_range_and_frame_indices(video: Path, fake: FakeGemini) -> None:
    with session(fake) as s:
        frames = list(iter_track(s, video, LABELS, fps=1, start=2, end=6, concurrency=3))
    assert [(f.index, f.timestamp_s) for f in frames] == [(k * 10, float(k)) for k in range(2, 6)]
    check_tracks([(f.timestamp_s, f.detections) for f in frames])


def test_mot_file_and_annotated_video(video: Path, fake: FakeGemini, tmp_path: Path) -> None:
    import av

    with session(fake) as s:
        frames = list(iter_track(s, video, LABELS, fps=2))
    ids = check_tracks([(f.timestamp_s, f.detections) for f in frames])

    rows = [line.split(",") for line in mot_text(frames).splitlines()]
    assert len(rows) == 20 * 3
    for row in rows:
        frame, tracker_id, x, y, w, h = int(row[0]), int(row[1]), *map(float, row[2:6])
        assert row[6:] == ["1.0000", "-1", "-1", "-1"]
        name = next(n for n, i in ids.items() if i == tracker_id)
        x1, y1, x2, y2 = clip.truth((frame - 1) / clip.FPS)[name]
        assert max(abs(x - x1), abs(y - y1), abs(w - (x2 - x1)), abs(h - (y2 - y1))) <= 3

    # read back and scored by a maintained MOT evaluation library (TrackEval's matching)
    from trackers.eval import evaluate_mot_sequence

    truth_rows = []
    for frame in frames:
        for number, (x1, y1, x2, y2) in enumerate(clip.truth(frame.timestamp_s).values(), 1):
            truth_rows.append(f"{frame.index + 1},{number},{x1},{y1},{x2 - x1},{y2 - y1},1,1,1\n")
    (tmp_path / "gt.txt").write_text("".join(truth_rows))
    (tmp_path / "tracks.txt").write_text(mot_text(frames))
    scores = evaluate_mot_sequence(tmp_path / "gt.txt", tmp_path / "tracks.txt").CLEAR
    assert scores is not None
    assert (scores.IDSW, scores.CLR_FN, scores.CLR_FP, scores.CLR_TP) == (0, 0, 0, 60)
    assert scores.MOTA == 1.0

    target = tmp_path / "annotated.mp4"
    with open(target, "wb") as out:
        written = write_annotated_video(video, frames, out)
    assert written == clip.FPS * clip.SECONDS
    with av.open(str(target)) as container:
        stream = container.streams.video[0]
        assert round(float(stream.average_rate)) == clip.FPS
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(decoded) == clip.FPS * clip.SECONDS
    # frame 13 (1.3 s) holds the boxes of the sample at 1.0 s: a box outline is drawn around
    # where the red square was then, where the source frame has plain grey background
    x1, y1, x2, y2 = (int(v) for v in clip.truth(1.0)["red"])
    outline = decoded[13][y2 - 1 : y2 + 1, x1 + 2 : x1 + 6].astype(int)
    background = decoded[13][y2 + 20 : y2 + 22, x1 + 2 : x1 + 6].astype(int)
    assert np.abs(outline - 128).max() > 40 and np.abs(background - 128).max() < 30


def test_a_failure_mid_clip_then_a_rerun_pays_no_answered_frame_again(
    video: Path, tmp_path: Path
) -> None:
    with FakeGemini() as server:

        def answer(request: Any) -> str:
            return json.dumps(clip.gemini_answer(request.inline_data[0][1]))

        server.add_rule(text=answer, times=7)
        server.add_rule(status=400, message="the request was refused", times=1)
        server.add_rule(text=answer)
        with (
            session(server, cache=tmp_path / "cache") as s,
            pytest.raises(vlmkit.BackendError) as failed,
        ):
            s.track(video, LABELS, fps=2, concurrency=1)
        assert "while tracking" in " ".join(getattr(failed.value, "__notes__", []))
        assert "at 3.500 s" in " ".join(failed.value.__notes__)
        assert generate_calls(server) == 8  # seven answers, then the failure

        with session(server, cache=tmp_path / "cache") as s:
            result = s.track(video, LABELS, fps=2, concurrency=1)
        assert generate_calls(server) == 8 + 13  # only the frames not answered before
    check_tracks(list(result.frames))


def test_per_frame_coco_reads_back_with_pycocotools(
    video: Path, fake: FakeGemini, tmp_path: Path
) -> None:
    from pycocotools.coco import COCO

    from vlmkit.tracking import video_result
    from vlmkit.videorun import write_track_outputs

    with session(fake) as s:
        frames = list(iter_track(s, video, LABELS, fps=2))
    ids = check_tracks([(f.timestamp_s, f.detections) for f in frames])
    written = write_track_outputs(
        video, frames, video_result(frames), tmp_path, "squares", categories=LABELS
    )
    assert tmp_path / "squares.coco.json" in written

    coco = COCO(str(tmp_path / "squares.coco.json"))
    assert coco.dataset["videos"] == [
        {"id": 1, "name": "squares.mp4", "width": clip.WIDTH, "height": clip.HEIGHT, "fps": 10.0}
    ]
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == LABELS
    images = coco.loadImgs(coco.getImgIds())
    assert [image["frame_id"] for image in images] == [k * 5 for k in range(20)]
    assert all(image["video_id"] == 1 for image in images)
    assert len(coco.getAnnIds()) == 60
    by_id = {tracker_id: name for name, tracker_id in ids.items()}
    for image in images:
        truth = clip.truth(image["frame_id"] / clip.FPS)
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
        assert sorted(a["track_id"] for a in annotations) == sorted(ids.values())
        for annotation in annotations:
            assert annotation["instance_id"] == annotation["track_id"]
            name = by_id[annotation["track_id"]]
            assert coco.cats[annotation["category_id"]]["name"] == f"{name} square"
            x, y, w, h = annotation["bbox"]
            x1, y1, x2, y2 = truth[name]
            assert max(abs(x - x1), abs(y - y1), abs(x + w - x2), abs(y + h - y2)) <= 3
    assert sorted(t["id"] for t in coco.dataset["tracks"]) == sorted(ids.values())


def test_segment_tracks_draw_their_masks_in_the_annotated_video(
    video: Path, tmp_path: Path
) -> None:
    import av

    with FakeGemini() as server:
        server.add_rule(
            text=lambda request: json.dumps(
                clip.gemini_answer(request.inline_data[0][1], masks=True)
            )
        )
        with session(server) as s:
            frames = list(iter_track(s, video, LABELS, fps=2, task="segment", start=0, end=2))
    check_tracks([(f.timestamp_s, f.detections) for f in frames])
    assert all(d.mask is not None for f in frames for d in f.detections)

    target = tmp_path / "masks.mp4"
    with open(target, "wb") as out:
        assert write_annotated_video(video, frames, out, start=0, end=2) == 2 * clip.FPS
    with av.open(str(target)) as container:
        decoded = [f.to_ndarray(format="rgb24").astype(int) for f in container.decode(video=0)]
    # frame 14 (1.4 s) holds the sample at 1.0 s (masks are held, not moved): the left strip of
    # where the red square was then is grey background in the source by now, but is still
    # covered by its mask, blended with the track's colour
    x1, y1, _, y2 = (int(v) for v in clip.truth(1.0)["red"])
    assert clip.truth(1.4)["red"][0] > x1 + 8
    held = decoded[14][(y1 + y2) // 2, x1 + 5]
    assert np.abs(clip.picture(1.4)[(y1 + y2) // 2, x1 + 5].astype(int) - 128).max() == 0
    assert np.abs(held - 128).max() > 25, held
    # on a sampled frame the square's own pixels are blended too: no longer the pure colour
    centre = decoded[10][(y1 + y2) // 2, x1 + 20]
    assert np.abs(centre - np.array(clip.SQUARES["red"][0])).max() > 30, centre

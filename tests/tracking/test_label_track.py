"""``vlmkit label --task track``: a folder of videos into a run folder, resumable per video.

The fake Gemini counts what it answers: after a SIGKILL mid-clip, a re-run pays only for the
frames the killed run had not been answered yet.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

pytest.importorskip("trackers")
pytest.importorskip("google.genai")

import vlmkit
from tests.tracking import clip
from tests.tracking.test_track import LABELS, MODEL
from vlmkit.cli import app
from vlmkit_gemini.testing import FakeGemini

OUTPUTS = ("coco.json", "json", "mot.txt", "tracked.mp4")


def label_args(inputs: Path, out: Path, fake: FakeGemini, *extra: str) -> list[str]:
    labels = [arg for label in LABELS for arg in ("-l", label)]
    return [
        "label", str(inputs), "--task", "track", *labels, "--backend", "gemini-api",
        "--model", MODEL, "--no-cache", "--config", f"base_url={fake.base_url}",
        "--config", "api_key=test-key", "--out", str(out), *extra,
    ]  # fmt: skip


def invoke(args: list[str]) -> Any:
    return CliRunner().invoke(app, args, env={"COLUMNS": "80", "VLMKIT_CACHE": None})


def outputs(out: Path, stem: str) -> list[Path]:
    return [out / f"{stem}.{suffix}" for suffix in OUTPUTS]


def test_a_folder_of_videos_is_tracked_once_per_video(
    video: Path, fake: FakeGemini, tmp_path: Path
) -> None:
    import av

    inputs = tmp_path / "videos"
    (inputs / "street").mkdir(parents=True)
    shutil.copy(video, inputs / "a.mp4")
    shutil.copy(video, inputs / "street" / "b.mp4")
    (inputs / "notes.txt").write_text("not a video")
    out = tmp_path / "run"

    result = invoke(label_args(inputs, out, fake, "--fps", "1"))
    assert result.exit_code == 0, result.output
    assert len(fake.requests_of("generate")) == 20  # 10 sampled frames per video
    assert "a.mp4: done, 3 track(s) over 10 frame(s) (10 answered now, 0 from" in result.stdout
    for stem in ("a", "street/b"):
        assert all(path.is_file() for path in outputs(out, stem)), stem
        rows = (out / f"{stem}.mot.txt").read_text().splitlines()
        assert len(rows) == 30 and {row.split(",")[1] for row in rows} == {"0", "1", "2"}
        with av.open(str(out / f"{stem}.tracked.mp4")) as container:
            assert sum(1 for _ in container.decode(video=0)) == clip.FPS * clip.SECONDS
        saved = json.loads((out / f"{stem}.json").read_text())
        assert [f["index"] for f in saved["frames"]] == [k * clip.FPS for k in range(10)]

    again = invoke(label_args(inputs, out, fake, "--fps", "1", "--json"))
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)
    assert [v["status"] for v in summary["videos"]] == ["resumed", "resumed"]
    assert summary["requests"] == 0 and len(fake.requests_of("generate")) == 20

    # another question in the same folder would mix answers: refused before any request
    other = invoke(label_args(inputs, out, fake, "--fps", "2"))
    assert other.exit_code != 0 and "different run" in other.output
    assert len(fake.requests_of("generate")) == 20


def test_a_killed_run_resumes_without_paying_an_answered_frame_again(
    video: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "videos"
    inputs.mkdir()
    shutil.copy(video, inputs / "squares.mp4")
    out = tmp_path / "run"
    kill_at = 8  # the 8th request: 7 frames answered and recorded, then the process dies
    state: dict[str, Any] = {"received": 0, "answered": 0, "process": None}
    lock = threading.Lock()

    with FakeGemini() as server:

        def answer(request: Any) -> str:
            with lock:
                state["received"] += 1
                if state["received"] == kill_at and state["process"] is not None:
                    state["process"].send_signal(signal.SIGKILL)
                    state["process"].wait()
                else:
                    state["answered"] += 1
            return json.dumps(clip.gemini_answer(request.inline_data[0][1]))

        server.add_rule(text=answer)
        args = label_args(inputs, out, server, "--fps", "2", "--concurrency", "1")
        env = {k: v for k, v in os.environ.items() if not k.startswith("VLMKIT_")}
        with lock:
            state["process"] = subprocess.Popen(
                [sys.executable, "-m", "vlmkit.cli", *args],
                env={**env, "COLUMNS": "80"},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        _, err = state["process"].communicate(timeout=120)
        assert state["process"].returncode == -signal.SIGKILL, err.decode()
        assert state["answered"] == kill_at - 1
        # nothing half-written: no output of the video, only the ledger of its answered frames
        assert not any(path.exists() for path in outputs(out, "squares"))
        ledger = (out / "tracks.jsonl").read_text().splitlines()
        assert len(ledger) == kill_at - 1

        # what a kill while staging would leave: a hidden temporary file of the dead process
        stale = out / f".squares.mot.txt.{state['process'].pid}-0123456789ab.tmp"
        stale.write_text("half a file")
        state["process"] = None
        result = invoke(args)
        assert result.exit_code == 0, result.output
        assert "(13 answered now, 7 from the ledger)" in result.stdout
    # every sampled frame answered once; the one request the kill cut off was never answered
    assert state["answered"] == 20 and state["received"] == 21
    assert all(path.is_file() for path in outputs(out, "squares"))
    assert not stale.exists()  # swept once the re-run held the folder's lock
    rows = (out / "squares.mot.txt").read_text().splitlines()
    assert len(rows) == 60 and {row.split(",")[1] for row in rows} == {"0", "1", "2"}


def test_label_track_refuses_image_sinks_before_any_call(
    video: Path, fake: FakeGemini, tmp_path: Path
) -> None:
    result = invoke(label_args(video, tmp_path / "run", fake, "--sink", "coco"))
    assert result.exit_code != 0 and "drop --sink" in result.output
    assert not fake.requests_of("generate")


def test_a_failed_video_is_recorded_and_the_next_run_pays_only_the_rest(
    video: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "videos"
    inputs.mkdir()
    shutil.copy(video, inputs / "squares.mp4")
    (inputs / "broken.mp4").write_text("not a video")
    out = tmp_path / "run"
    with FakeGemini() as server:

        def answer(request: Any) -> str:
            return json.dumps(clip.gemini_answer(request.inline_data[0][1]))

        server.add_rule(text=answer, times=4)
        server.add_rule(status=400, message="the request was refused", times=1)
        server.add_rule(text=answer)
        args = label_args(inputs, out, server, "--fps", "1", "--concurrency", "1")

        first = invoke(args)
        assert first.exit_code == 1
        assert "2 video(s) failed" in first.output and "re-run the command" in first.output
        assert "broken.mp4: failed" in first.stdout and "not a readable video" in first.stdout
        assert "squares.mp4: failed" in first.stdout and "refused" in first.stdout
        assert not any(path.exists() for path in outputs(out, "squares"))

        (inputs / "broken.mp4").unlink()
        second = invoke(args)
        assert second.exit_code == 0, second.output
        assert "(6 answered now, 4 from the ledger)" in second.stdout
        assert len(server.requests_of("generate")) == 4 + 1 + 6
    assert all(path.is_file() for path in outputs(out, "squares"))


def test_a_cut_off_frame_answer_fails_the_video_and_is_asked_again(
    video: Path, tmp_path: Path
) -> None:
    """A frame whose answer the token limit cut off is a failed frame, never a done one
    missing its boxes (the image runner fails such an item too); the next run asks only it and
    the frames not yet answered."""
    inputs = tmp_path / "videos"
    inputs.mkdir()
    shutil.copy(video, inputs / "squares.mp4")
    out = tmp_path / "run"
    with FakeGemini() as server:

        def answer(request: Any) -> str:
            return json.dumps(clip.gemini_answer(request.inline_data[0][1]))

        server.add_rule(text=answer, times=4)
        server.add_rule(text=answer, finish_reason="MAX_TOKENS", times=1)
        server.add_rule(text=answer)
        args = label_args(inputs, out, server, "--fps", "1", "--concurrency", "1")

        first = invoke(args)
        assert first.exit_code == 1, first.output
        assert "squares.mp4: failed" in first.stdout and "cut off" in first.stdout
        assert not any(path.exists() for path in outputs(out, "squares"))
        records = [json.loads(line) for line in (out / "tracks.jsonl").read_text().splitlines()]
        cut = [r for r in records if r.get("error_type") == "Truncated"]
        assert len(cut) == 1 and cut[0]["status"] == "failed" and "#frame" in cut[0]["key"]

        second = invoke(args)
        assert second.exit_code == 0, second.output
        assert "(6 answered now, 4 from the ledger)" in second.stdout
        assert len(server.requests_of("generate")) == 4 + 1 + 6
    assert all(path.is_file() for path in outputs(out, "squares"))


def test_a_finished_video_keeps_its_frames_once_in_the_ledger(
    video: Path, fake: FakeGemini, tmp_path: Path
) -> None:
    from vlmkit.ledger import LedgerRecord, read_ledger
    from vlmkit.serialize import result_from_dict

    inputs = tmp_path / "videos"
    inputs.mkdir()
    shutil.copy(video, inputs / "squares.mp4")
    out = tmp_path / "run"
    args = label_args(inputs, out, fake, "--fps", "1")
    assert invoke(args).exit_code == 0

    lines = (out / "tracks.jsonl").read_bytes().splitlines(keepends=True)
    keys = [json.loads(line)["key"] for line in lines]
    assert keys[-1] == "squares.mp4"  # frames are answered concurrently: any order before it
    assert sorted(keys[:-1]) == sorted(f"squares.mp4#frame{k * clip.FPS}" for k in range(10))
    frame_bytes = sum(len(line) for line in lines[:-1])
    # the done record references its frame records instead of holding the frames again
    done = read_ledger(out / "tracks.jsonl").get("squares.mp4")
    assert done is not None and isinstance(done.result, vlmkit.VideoResult)
    assert done.result.frames == () and len(done.result.events) == 3
    assert len(lines[-1]) * 5 < frame_bytes
    # what the same run wrote before: the done record held every tracked frame again
    tracked = result_from_dict(json.loads((out / "squares.json").read_text()))
    old_done = LedgerRecord(key="squares.mp4", status="done", result=tracked)
    old_bytes = frame_bytes + len(old_done.to_line())
    assert len(tracked.frames) == 10 and old_bytes > 1.8 * frame_bytes
    assert (out / "tracks.jsonl").stat().st_size < 0.6 * old_bytes

    # a ledger written the old way (frames inside the done record) still reads and resumes
    (out / "tracks.jsonl").write_bytes(b"".join(lines[:-1]) + old_done.to_line())
    again = invoke(args)
    assert again.exit_code == 0, again.output
    assert "squares.mp4: resumed, 3 track(s) over 10 frame(s)" in again.stdout
    assert len(fake.requests_of("generate")) == 10
    # and a new one resumes with the same report, counting the frame records it references
    (out / "tracks.jsonl").write_bytes(b"".join(lines))
    third = invoke(args)
    assert "squares.mp4: resumed, 3 track(s) over 10 frame(s)" in third.stdout
    assert len(fake.requests_of("generate")) == 10

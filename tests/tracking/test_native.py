"""Gemini's native tracking route: one video request for boxes at timestamps, linked by the same
ByteTrack. The fake Gemini answers it from the uploaded clip's own frames."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trackers")
pytest.importorskip("google.genai")

import vlmkit
from tests.tracking import clip
from tests.tracking.test_track import LABELS, check_tracks, session
from vlmkit.nativetrack import native_frames
from vlmkit.testing import scripted_plugin
from vlmkit_gemini.testing import FakeGemini


@pytest.fixture
def native_fake() -> Any:
    with FakeGemini() as server:

        def answer(request: Any) -> str:
            ((_, uri),) = request.file_data
            data = server.file_bytes(uri.rsplit("/", 1)[-1])
            return json.dumps(clip.gemini_video_answer(data, request.prompt_text))

        server.add_rule(text=answer)
        yield server
        errors = server.errors
    assert not errors, errors


def test_native_route_tracks_the_clip_with_one_request(
    video: Path, native_fake: FakeGemini
) -> None:
    with session(native_fake) as s:
        assert s.backend_info.track_routes == {"frames", "native"}
        result = s.track(video, LABELS, fps=2, route="native")

    (request,) = native_fake.requests_of("generate")  # the whole clip, once
    assert request.video_metadata == [{"fps": 2.0}]
    assert request.generation_config["response_mime_type"] == "application/json"
    assert "00:00.0, 00:00.5, 00:01.0" in request.prompt_text and "box_2d" in request.prompt_text
    assert [f.index for f in result.frames] == [k * 5 for k in range(20)]
    assert [f.timestamp_s for f in result.frames] == [k / 2 for k in range(20)]
    ids = check_tracks(list(result.frames))  # 0 id switches, boxes within 3 px
    assert {e.label for e in result.events} == {f"{n} square #{i}" for n, i in ids.items()}
    assert result.usage.prompt_tokens > 0


def test_native_route_with_a_clip_range(video: Path, native_fake: FakeGemini) -> None:
    with session(native_fake) as s:
        result = s.track(video, LABELS, fps=1, start=2, end=6, route="native")
    (request,) = native_fake.requests_of("generate")
    assert request.video_metadata == [{"fps": 1.0, "start_offset": "2s", "end_offset": "6s"}]
    assert [(f.index, f.timestamp_s) for f in result.frames] == [(k * 10, k) for k in range(2, 6)]
    check_tracks(list(result.frames))


def test_auto_takes_frames_and_an_undeclared_route_names_who_declares_it(video: Path) -> None:
    with vlmkit.Session("scripted", plugins=[scripted_plugin("[]")], entrypoints=False) as s:
        assert s.backend_info.track_routes == {"frames"}
        with pytest.raises(vlmkit.UnsupportedTask, match="'native' route"):
            s.track(video, ["thing"], route="native")
        with pytest.raises(vlmkit.ConfigError, match="route must be"):
            s.track(video, ["thing"], route="fast")
        assert not s.backend.requests  # type: ignore[attr-defined]
        assert len(s.track(video, ["thing"], fps=1).frames) == 10  # auto: frames


def test_native_route_refuses_segment(video: Path, native_fake: FakeGemini) -> None:
    with session(native_fake) as s, pytest.raises(vlmkit.ConfigError, match="boxes only"):
        s.track(video, LABELS, route="native", task="segment")
    assert not native_fake.requests_of("generate")


def test_a_backend_declares_its_routes() -> None:
    info = vlmkit.BackendInfo(
        name="x", factory=lambda: None, tasks=["video"], track_routes=["native"]
    )
    assert info.track_routes == {"native"}
    with pytest.raises(vlmkit.ConfigError, match="track_routes"):
        vlmkit.BackendInfo(name="x", factory=lambda: None, tasks=["detect"], track_routes=["x"])


def test_native_answers_are_parsed_tolerantly() -> None:
    text = """```json
    [{"time": "00:00.0", "boxes": [{"box_2d": [0, 0, 500, 500], "label": "a"}]},
     {"time": "00:07.0", "boxes": []},
     {"timestamp": 1, "boxes": [{"box_2d": [500, 500, 1000, 1000], "label": "a"}]}]
    ```"""
    frames = native_frames(
        text, [0.0, 1.0, 2.0], step_s=1.0, video_fps=10, size=(200, 100), convention="yxyx-1000"
    )
    assert [f.index for f in frames] == [0, 10, 20]
    assert frames[0].detections.xyxy.tolist() == [[0, 0, 100, 50]]
    assert frames[1].detections.xyxy.tolist() == [[100, 50, 200, 100]]
    assert len(frames[2].detections) == 0  # a time left out: nothing seen then
    (skipped,) = frames[0].detections.report.skipped  # 00:07 was not asked for
    assert "not asked for" in skipped.reason


def test_vlmkit_track_route_native_writes_the_four_outputs(
    video: Path, native_fake: FakeGemini, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from vlmkit.cli import app

    out = tmp_path / "out"
    labels = [arg for label in LABELS for arg in ("-l", label)]
    args = [
        "track", str(video), *labels, "--fps", "1", "--route", "native",
        "--backend", "gemini-api", "--model", "gemini-2.5-flash-lite", "--no-cache",
        "--config", f"base_url={native_fake.base_url}", "--config", "api_key=test-key",
        "--out", str(out),
    ]  # fmt: skip
    result = CliRunner().invoke(app, args, env={"COLUMNS": "80", "VLMKIT_CACHE": None})
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "3 track(s) over 10 sampled frame(s)"
    assert len(native_fake.requests_of("generate")) == 1
    assert sorted(p.name for p in out.iterdir()) == [
        "squares.coco.json", "squares.json", "squares.mot.txt", "squares.tracked.mp4",
    ]  # fmt: skip


def test_vlmkit_backends_lists_the_track_routes() -> None:
    from typer.testing import CliRunner

    from vlmkit.cli import app

    result = CliRunner().invoke(app, ["backends", "--json"], env={"VLMKIT_LOAD_PLUGINS": None})
    assert result.exit_code == 0, result.output
    by_name = {b["name"]: b for b in json.loads(result.stdout)["backends"]}
    assert by_name["gemini-api"]["track_routes"] == ["frames", "native"]
    assert by_name["gemini-vertex"]["track_routes"] == ["frames", "native"]


def test_label_track_route_native_asks_once_per_video_and_resumes_whole(
    video: Path, native_fake: FakeGemini, tmp_path: Path
) -> None:
    import shutil

    from tests.tracking.test_label_track import invoke, label_args, outputs

    inputs = tmp_path / "videos"
    inputs.mkdir()
    shutil.copy(video, inputs / "squares.mp4")
    args = label_args(inputs, tmp_path / "run", native_fake, "--fps", "1", "--route", "native")

    result = invoke(args)
    assert result.exit_code == 0, result.output
    assert "squares.mp4: done, 3 track(s) over 10 frame(s) (one video request)" in result.stdout
    assert len(native_fake.requests_of("generate")) == 1
    assert all(path.is_file() for path in outputs(tmp_path / "run", "squares"))
    rows = (tmp_path / "run" / "squares.mot.txt").read_text().splitlines()
    assert len(rows) == 30 and {row.split(",")[1] for row in rows} == {"0", "1", "2"}

    again = invoke(args)
    assert again.exit_code == 0 and "squares.mp4: resumed" in again.stdout
    assert len(native_fake.requests_of("generate")) == 1
    # the frames route in the same folder asks another question: refused
    other = invoke(label_args(inputs, tmp_path / "run", native_fake, "--fps", "1"))
    assert other.exit_code != 0 and "different run" in other.output


def _native_run(tmp_path: Path, video: Path, server: FakeGemini) -> tuple[list[str], Path]:
    import shutil

    from tests.tracking.test_label_track import label_args

    inputs = tmp_path / "videos"
    inputs.mkdir(exist_ok=True)
    shutil.copy(video, inputs / "squares.mp4")
    out = tmp_path / "run"
    return label_args(inputs, out, server, "--fps", "1", "--route", "native"), out


def test_a_native_answer_received_before_a_failure_is_not_paid_again(
    video: Path, native_fake: FakeGemini, tmp_path: Path
) -> None:
    from tests.tracking.test_label_track import invoke, outputs

    args, out = _native_run(tmp_path, video, native_fake)
    # the answer arrives, then its outputs cannot be written: a folder sits where one goes
    (out / "squares.mot.txt" / "in-the-way").mkdir(parents=True)
    first = invoke(args)
    assert first.exit_code == 1, first.output
    assert "squares.mp4: failed" in first.stdout and "could not write" in first.stdout
    assert len(native_fake.requests_of("generate")) == 1
    assert not any(path.is_file() for path in outputs(out, "squares"))

    (out / "squares.mot.txt" / "in-the-way").rmdir()
    (out / "squares.mot.txt").rmdir()
    second = invoke(args)
    assert second.exit_code == 0, second.output
    assert "squares.mp4: done, 3 track(s) over 10 frame(s) (its answer read back" in second.stdout
    assert len(native_fake.requests_of("generate")) == 1  # the kept answer, parsed again
    rows = (out / "squares.mot.txt").read_text().splitlines()
    assert len(rows) == 30 and {row.split(",")[1] for row in rows} == {"0", "1", "2"}


def test_an_unreadable_native_answer_is_kept_and_a_refused_request_asked_again(
    video: Path, tmp_path: Path
) -> None:
    from tests.tracking.test_label_track import invoke
    from vlmkit.ledger import read_ledger

    with FakeGemini() as server:

        def answer(request: Any) -> str:
            ((_, uri),) = request.file_data
            data = server.file_bytes(uri.rsplit("/", 1)[-1])
            return json.dumps(clip.gemini_video_answer(data, request.prompt_text))

        server.add_rule(status=400, message="the request was refused", times=1)
        server.add_rule(text="Sorry, I cannot give boxes at timestamps.", times=1)
        server.add_rule(text=answer)
        args, out = _native_run(tmp_path, video, server)

        refused = invoke(args)  # no answer came back: nothing is kept
        assert refused.exit_code == 1 and "refused" in refused.stdout
        assert "squares.mp4#answer" not in read_ledger(out / "tracks.jsonl")

        unreadable = invoke(args)  # an answer came back but holds no boxes: kept, with why
        assert unreadable.exit_code == 1 and "no JSON list of timed boxes" in unreadable.stdout
        ledger = read_ledger(out / "tracks.jsonl")
        kept = ledger.get("squares.mp4#answer")
        assert kept is not None and kept.result is not None
        assert kept.result.raw_text == "Sorry, I cannot give boxes at timestamps."
        failed = ledger.get("squares.mp4")
        assert failed is not None and failed.status == "failed"
        assert failed.error_type == "ParseError"

        # the kept answer is parsed again first, for free; it still holds no boxes, so the
        # model is asked again (as the image runner does with a kept answer)
        done = invoke(args)
        assert done.exit_code == 0, done.output
        assert "squares.mp4: done, 3 track(s) over 10 frame(s) (one video request)" in done.stdout
        assert len(server.requests_of("generate")) == 3
        errors = server.errors
    assert not errors, errors


def test_a_run_killed_after_the_native_answer_arrived_does_not_pay_for_it_again(
    video: Path, native_fake: FakeGemini, tmp_path: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time

    from tests.tracking.test_label_track import invoke, outputs

    args, out = _native_run(tmp_path, video, native_fake)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLMKIT_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "vlmkit.cli", *args],
        env={**env, "COLUMNS": "80"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )

    def kill_while_staging() -> None:  # the answer is in; its outputs are being written
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            if out.is_dir() and any(out.glob(".squares.*.tmp")):
                process.send_signal(signal.SIGKILL)
                return
            time.sleep(0.002)

    killer = threading.Thread(target=kill_while_staging)
    killer.start()
    _, err = process.communicate(timeout=120)
    killer.join()
    assert process.returncode == -signal.SIGKILL, err.decode()
    assert len(native_fake.requests_of("generate")) == 1
    assert not any(path.is_file() for path in outputs(out, "squares"))

    again = invoke(args)
    assert again.exit_code == 0, again.output
    assert "squares.mp4: done, 3 track(s) over 10 frame(s) (its answer read back" in again.stdout
    assert len(native_fake.requests_of("generate")) == 1


def test_a_native_answer_cut_off_by_the_token_limit_fails_the_video_instead_of_dropping_frames(
    video: Path, tmp_path: Path
) -> None:
    from tests.tracking.test_label_track import invoke, outputs

    with FakeGemini() as server:

        def answer(request: Any) -> str:
            ((_, uri),) = request.file_data
            data = server.file_bytes(uri.rsplit("/", 1)[-1])
            return json.dumps(clip.gemini_video_answer(data, request.prompt_text))

        def cut(request: Any) -> str:
            text = answer(request)
            return text[: len(text) // 2]  # the model hit max_output_tokens half-way

        server.add_rule(text=cut, finish_reason="MAX_TOKENS", times=1)
        server.add_rule(text=answer)
        args, out = _native_run(tmp_path, video, server)

        first = invoke(args)
        assert first.exit_code == 1, first.output
        assert "squares.mp4: failed" in first.stdout and "cut off" in first.stdout
        assert not any(path.exists() for path in outputs(out, "squares"))

        # the kept answer would be cut off again: the model is asked again
        second = invoke(args)
        assert second.exit_code == 0, second.output
        assert len(server.requests_of("generate")) == 2
        errors = server.errors
    assert not errors, errors
    rows = (out / "squares.mot.txt").read_text().splitlines()
    assert len(rows) == 30  # every square on every one of the 10 frames

"""Video on gemini-api: Files API upload, waiting for ACTIVE, fps, clip offsets,
media_resolution, and answers with timestamps parsed into timed events."""

from __future__ import annotations

import pytest

pytest.importorskip("google.genai")
pytest.importorskip("vlmkit_gemini")

from tests.gemini.conftest import tiny_video
from vlmkit import BackendError, ConfigError, MediaError

CHAPTERS = "00:00 - 00:04 Kick-off\n00:04 - 00:09 First attack\n00:09 - 00:12 Goal"


@pytest.fixture
def clip(tmp_path):
    return tiny_video(tmp_path / "match.mp4", seconds=12)


def test_video_is_uploaded_waited_for_and_answered_with_events(
    fake_gemini, gemini_session, clip, sleeps
):
    fake_gemini.processing_gets = 3  # PROCESSING for two polls, ACTIVE on the third
    fake_gemini.add_rule(prompt_contains="Chapters", text=CHAPTERS)
    session = gemini_session(file_poll_interval_s=0.5)

    result = session.video(
        clip, "Chapters with timestamps", fps=2, start=0, end=12, media_resolution="low"
    )

    assert [(e.start, e.end, e.text) for e in result.events] == [
        (0.0, 4.0, "Kick-off"),
        (4.0, 9.0, "First attack"),
        (9.0, 12.0, "Goal"),
    ]
    assert result.finish.value == "stop" and result.provenance.usage.prompt_tokens > 0
    (start,) = fake_gemini.requests_of("upload_start")
    assert start.headers["x-goog-upload-header-content-type"] == "video/mp4"
    assert len(fake_gemini.requests_of("files_get")) == 3
    assert sleeps.calls[:2] == [0.5, 0.75]  # polling backs off
    (req,) = fake_gemini.requests_of()
    ((mime, uri),) = req.file_data
    (name,) = fake_gemini.files
    assert mime == "video/mp4" and uri.endswith(name)
    assert fake_gemini.file_bytes(name) == clip.read_bytes()
    assert req.video_metadata == [{"fps": 2.0, "start_offset": "0s", "end_offset": "12s"}]
    assert req.media_resolution == "MEDIA_RESOLUTION_LOW"
    parts = req.body["contents"][0]["parts"]
    assert list(parts[0]) == ["fileData", "videoMetadata"] and list(parts[-1]) == ["text"]


def test_same_video_is_uploaded_once_and_deleted_on_close(fake_gemini, gemini_session, clip):
    session = gemini_session(file_poll_interval_s=0.01)
    session.video(clip)
    session.video(clip, "Who scores?", start=6.5)
    assert len(fake_gemini.requests_of("upload_start")) == 1
    first, second = fake_gemini.requests_of()
    assert first.file_data == second.file_data
    assert first.video_metadata == [] and second.video_metadata == [{"start_offset": "6.5s"}]
    assert len(fake_gemini.files) == 1
    session.close()
    assert fake_gemini.files == {}


def test_failed_processing_is_a_backend_error(fake_gemini, gemini_session, clip):
    fake_gemini.processing_result = "FAILED"
    session = gemini_session(file_poll_interval_s=0.01)
    with pytest.raises(BackendError, match=r"could not process.*File processing failed"):
        session.video(clip)
    assert fake_gemini.requests_of() == []  # never asked about a broken file
    assert fake_gemini.files == {}  # and did not leave it behind


def test_processing_timeout_is_a_backend_error(fake_gemini, gemini_session, clip):
    fake_gemini.processing_gets = 10_000
    session = gemini_session(file_poll_interval_s=0.01, file_timeout_s=0.05)
    session.backend.retry.sleep.scale = 1.0  # really wait, so the deadline passes
    with pytest.raises(BackendError, match=r"still PROCESSING.*file_timeout_s"):
        session.video(clip)


def test_gemini_3_video_defaults_to_low_media_resolution(fake_gemini, gemini_session, clip):
    session = gemini_session(model="gemini-3-flash-preview", file_poll_interval_s=0.01)
    session.video(clip)
    session.video(clip, media_resolution="high")
    first, second = fake_gemini.requests_of()
    # Gemini 3.x: set on the video part, not for the whole request
    assert first.part_media_resolution == ["MEDIA_RESOLUTION_LOW"]
    assert second.part_media_resolution == ["MEDIA_RESOLUTION_HIGH"]
    assert first.media_resolution is None
    assert "thinking_config" not in first.generation_config


def test_uri_sources_are_passed_through(fake_gemini, gemini_session):
    session = gemini_session()
    session.video("https://www.youtube.com/watch?v=abc123", "Summary?", fps=0.5)
    (req,) = fake_gemini.requests_of()
    assert req.file_data == [("", "https://www.youtube.com/watch?v=abc123")]
    assert req.video_metadata == [{"fps": 0.5}]
    assert fake_gemini.requests_of("upload_start") == []


def test_bad_video_inputs_are_refused_before_any_call(fake_gemini, gemini_session, tmp_path):
    session = gemini_session()
    with pytest.raises(MediaError, match=r"not found"):
        session.video(tmp_path / "missing.mp4")
    odd = tiny_video(tmp_path / "clip.xyz.mp4")
    odd = odd.rename(tmp_path / "clip.xyz")  # a real video with a suffix nobody knows
    with pytest.raises(MediaError, match=r"unknown video type"):
        session.video(odd)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    with pytest.raises(MediaError, match=r"not a readable video"):
        session.video(broken)
    with pytest.raises(ConfigError):
        session.video(odd, fps=0)
    assert fake_gemini.requests == []

"""Bad input to ``Session.track`` is a clear error before any model call."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import vlmkit
from vlmkit.testing import ScriptedBackend, scripted_plugin

pytest.importorskip("trackers")


@pytest.fixture
def session():
    with vlmkit.Session("scripted", plugins=[scripted_plugin("[]")], entrypoints=False) as s:
        yield s


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"fps": 0}, "fps must be a positive number"),
        ({"task": "ocr"}, "task must be one of detect, segment"),
        ({"lost_s": -1}, "lost_s must be a positive number"),
        ({"concurrency": 0}, "concurrency must be at least 1"),
        ({"start": 12}, "is at or past the end"),
        ({"start": 4, "end": 2}, "must be after"),
    ],
)
def test_bad_arguments_are_refused_before_any_call(
    session: vlmkit.Session,
    video: Path,
    arguments: dict,
    message: str,
) -> None:
    with pytest.raises(vlmkit.ConfigError, match=message):
        session.track(video, ["thing"], **arguments)
    assert isinstance(session.backend, ScriptedBackend) and not session.backend.requests


def test_a_missing_or_unreadable_video_is_a_media_error(
    session: vlmkit.Session, tmp_path: Path
) -> None:
    with pytest.raises(vlmkit.MediaError, match="no such file"):
        session.track(tmp_path / "nope.mp4", ["thing"])
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(vlmkit.MediaError, match="not a readable video"):
        session.track(tmp_path / "notes.mp4", ["thing"])
    assert not session.backend.requests  # type: ignore[attr-defined]


def test_without_the_trackers_package_the_error_says_what_to_install(
    session: vlmkit.Session,
    video: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "trackers", None)  # import trackers -> ImportError
    with pytest.raises(vlmkit.ConfigError, match=r'pip install "vlmkit\[track\]"'):
        session.track(video, ["thing"])
    assert not session.backend.requests  # type: ignore[attr-defined]


def test_nothing_found_gives_empty_frames_not_an_error(
    session: vlmkit.Session,
    video: Path,
) -> None:
    result = session.track(video, ["thing"], fps=1)
    assert len(result.frames) == 10 and all(len(d) == 0 for _, d in result.frames)
    assert result.events == () and result.text == "0 track(s) over 10 sampled frame(s)"


def test_a_local_backend_that_batches_gets_frames_in_batches(video: Path) -> None:
    plugin = scripted_plugin("[]", concurrency=1, batch_size=4)
    with vlmkit.Session("scripted", plugins=[plugin], entrypoints=False) as s:
        result = s.track(video, ["thing"], fps=2)
        batches = list(s.backend.batches)  # type: ignore[attr-defined]
    assert len(result.frames) == 20 and sum(batches) == 20
    assert max(batches) > 1  # frames went to the model together, not one by one

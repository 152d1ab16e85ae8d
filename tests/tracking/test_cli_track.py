"""``vlmkit track``: the CLI over the fake Gemini writes a MOT file, an annotated MP4 and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("trackers")
pytest.importorskip("google.genai")

from tests.tracking import clip
from tests.tracking.test_track import MODEL
from vlmkit.cli import app
from vlmkit_gemini.testing import FakeGemini


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "80", "VLMKIT_CACHE": None})


def test_track_writes_mot_video_and_json_together(
    video: Path,
    fake: FakeGemini,
    tmp_path: Path,
) -> None:
    import av

    out = tmp_path / "out"
    result = invoke(
        "track", str(video), "-l", "red square", "-l", "blue square", "-l", "green square",
        "--fps", "2", "--backend", "gemini-api", "--model", MODEL, "--no-cache",
        "--config", f"base_url={fake.base_url}", "--config", "api_key=test-key",
        "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "3 track(s) over 20 sampled frame(s)"
    assert "00:00–00:09 red square #0" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "squares.coco.json", "squares.json", "squares.mot.txt", "squares.tracked.mp4",
    ]  # fmt: skip
    rows = [line.split(",") for line in (out / "squares.mot.txt").read_text().splitlines()]
    assert len(rows) == 60 and {row[1] for row in rows} == {"0", "1", "2"}
    with av.open(str(out / "squares.tracked.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == clip.FPS * clip.SECONDS
    saved = json.loads((out / "squares.json").read_text())
    assert saved["type"] == "video" and len(saved["frames"]) == 20


def test_track_refuses_prompt_and_labels_together_before_any_call(
    video: Path,
    fake: FakeGemini,
    tmp_path: Path,
) -> None:
    result = invoke(
        "track", str(video), "-p", "squares", "-l", "red square", "--backend", "gemini-api",
        "--config", f"base_url={fake.base_url}", "--config", "api_key=test-key",
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert result.exit_code != 0
    assert "either --prompt or --label" in result.output
    assert not (tmp_path / "out").exists() and not fake.requests_of("generate")


def test_track_help_fits_80_columns() -> None:
    result = invoke("track", "--help")
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    assert "…" not in result.output and "<int" not in result.output


def test_a_failed_write_leaves_no_file(
    video: Path, fake: FakeGemini, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vlmkit.tracking

    def broken(*_args: object, **_kwargs: object) -> int:
        raise OSError("No space left on device")

    monkeypatch.setattr(vlmkit.tracking, "write_annotated_video", broken)
    out = tmp_path / "out"
    result = invoke(
        "track", str(video), "-l", "red square", "--fps", "1", "--backend", "gemini-api",
        "--model", MODEL, "--no-cache", "--config", f"base_url={fake.base_url}",
        "--config", "api_key=test-key", "--out", str(out),
    )  # fmt: skip
    assert result.exit_code != 0 and "No space left on device" in result.output
    assert not out.exists() or not list(out.iterdir())  # the MOT file staged first is gone too

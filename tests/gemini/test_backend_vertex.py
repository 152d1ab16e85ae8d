"""gemini-vertex end to end: project mode (explicit project, location, credentials) and express
mode, every task, gs:// media and the limits of a Vertex without a Files API."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("google.genai")
pytest.importorskip("vlmkit_gemini")

import vlmkit
from tests.gemini.conftest import (
    MODEL,
    TEST_API_KEY,
    TEST_LOCATION,
    TEST_PROJECT,
    TEST_TOKEN,
    StaticTokenCredentials,
    photo,
    tiny_video,
)
from vlmkit import AuthError, ConfigError, MediaError

BOXES = [{"box_2d": [100, 100, 500, 500], "label": "cat"}]


def _mask_png() -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8), 255, np.uint8), "L").save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize("mode", ["project", "express"])
def test_every_task_on_vertex(fake_gemini, vertex_session, tmp_path, mode):
    fake_gemini.add_rule(prompt_contains="Detect", text=BOXES)
    fake_gemini.add_rule(
        prompt_contains="segmentation",
        text=[{"box_2d": [100, 100, 500, 500], "label": "cup", "mask": _mask_png()}],
    )
    fake_gemini.add_rule(prompt_contains="Read all the text", text="EXIT")
    fake_gemini.add_rule(prompt_contains="key events", text="00:01 - 00:04 A door opens")
    fake_gemini.add_rule(text="A photo.")
    session = vertex_session(**({"api_key": TEST_API_KEY} if mode == "express" else {}))
    image = photo(400, 300)
    clip = tiny_video(tmp_path / "clip.mp4", seconds=6)

    assert session.describe(image).text == "A photo."
    assert session.describe([image, photo(seed=3)], "Same?").text == "A photo."
    np.testing.assert_allclose(session.detect(image, "cats").xyxy, [[40, 30, 200, 150]])
    (cup,) = session.segment(image, "cups")
    assert cup.mask is not None and cup.mask.area == 160 * 120
    assert session.ocr(image).text == "EXIT"
    video = session.video(clip, fps=1)
    assert [(e.start, e.end) for e in video.events] == [(1.0, 4.0)]
    assert video.events[0].text == "A door opens"

    requests = fake_gemini.requests_of()
    assert len(requests) == 6
    assert {r.path_kind for r in requests} == {"vertex" if mode == "project" else "express"}
    if mode == "project":
        assert {(r.project, r.location, r.bearer_token) for r in requests} == {
            (TEST_PROJECT, TEST_LOCATION, TEST_TOKEN)
        }
        assert all(r.api_key is None for r in requests)
    else:
        assert {r.api_key for r in requests} == {TEST_API_KEY}
        assert all(r.bearer_token is None for r in requests)
    # Small local videos go inline on Vertex (it has no Files API): no upload was attempted.
    assert fake_gemini.requests_of("upload_start") == []
    assert requests[-1].inline_data[0] == ("video/mp4", clip.read_bytes())
    assert requests[-1].video_metadata == [{"fps": 1.0}]
    assert requests[2].thinking_budget == 0 and requests[3].thinking_budget == 0


def test_gs_uri_video_is_passed_through(fake_gemini, vertex_session):
    fake_gemini.add_rule(text="00:05 - 00:09 Goal")
    session = vertex_session()
    result = session.video("gs://bucket/match.mp4", "Chapters?", fps=0.5, start=10, end=30)
    assert result.events[0].start == 5.0
    (req,) = fake_gemini.requests_of()
    assert req.file_data == [("video/mp4", "gs://bucket/match.mp4")]
    assert req.video_metadata == [{"fps": 0.5, "start_offset": "10s", "end_offset": "30s"}]
    parts = req.body["contents"][0]["parts"]
    assert list(parts[0]) == ["fileData", "videoMetadata"] and list(parts[1]) == ["text"]


def test_project_and_location_from_the_environment(fake_gemini, monkeypatch):
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "env-project")
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "europe-west4")
    with vlmkit.Session(
        backend="gemini-vertex", credentials=StaticTokenCredentials(), base_url=fake_gemini.base_url
    ) as session:
        session.describe(photo())
    monkeypatch.delenv("GOOGLE_CLOUD_LOCATION")
    with vlmkit.Session(
        backend="gemini-vertex", credentials=StaticTokenCredentials(), base_url=fake_gemini.base_url
    ) as session:
        assert session.backend.location == "global"
        session.describe(photo())
    first, second = fake_gemini.requests_of()
    assert (first.project, first.location) == ("env-project", "europe-west4")
    assert (second.project, second.location) == ("env-project", "global")
    assert second.path.startswith("/v1beta1/projects/env-project/locations/global/")


def test_api_key_in_the_environment_alone_never_switches_to_express(fake_gemini, monkeypatch):
    monkeypatch.setenv("GOOGLE_API_KEY", "ai-studio-key")
    with vlmkit.Session(
        backend="gemini-vertex",
        project="p",
        credentials=StaticTokenCredentials(),
        base_url=fake_gemini.base_url,
    ) as session:
        session.describe(photo())
    with vlmkit.Session(backend="gemini-vertex", express=True, base_url=fake_gemini.base_url) as s:
        s.describe(photo())
    project, express = fake_gemini.requests_of()
    assert project.path_kind == "vertex" and project.api_key is None
    assert express.path_kind == "express" and express.api_key == "ai-studio-key"


def test_missing_application_default_credentials_say_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "p")
    with pytest.raises(AuthError, match=r"gcloud auth application-default login"):
        vlmkit.Session(backend="gemini-vertex")


def test_missing_project_and_mixed_modes_are_config_errors(fake_gemini):
    with pytest.raises(ConfigError, match=r"GOOGLE_CLOUD_PROJECT"):
        vlmkit.Session(backend="gemini-vertex", credentials=StaticTokenCredentials())
    with pytest.raises(ConfigError, match=r"express mode"):
        vlmkit.Session(backend="gemini-vertex", api_key="k", project="p")
    with pytest.raises(AuthError, match=r"GOOGLE_API_KEY"):
        vlmkit.Session(backend="gemini-vertex", express=True)


def test_rejected_vertex_token_is_an_auth_error(fake_gemini, vertex_session):
    fake_gemini.invalid_tokens.add("bad-token")
    session = vertex_session(credentials=StaticTokenCredentials("bad-token"))
    with pytest.raises(AuthError, match=r"roles/aiplatform.user") as info:
        session.describe(photo())
    assert "bad-token" not in str(info.value)
    assert len(fake_gemini.requests_of()) == 1


def test_large_local_video_is_refused_with_what_to_do(fake_gemini, vertex_session, tmp_path):
    clip = tiny_video(tmp_path / "long.mp4", seconds=30, size=64)
    session = vertex_session(inline_limit_bytes=clip.stat().st_size)
    with pytest.raises(MediaError, match=r"gs://") as info:
        session.video(clip)
    assert "no Files API" in str(info.value)
    assert fake_gemini.requests == []


def test_image_over_the_inline_limit_is_refused_on_vertex(fake_gemini, vertex_session):
    session = vertex_session(inline_limit_bytes=30_000)
    with pytest.raises(MediaError, match=r"max_image_side"):
        session.detect(photo(400, 300), "cats")
    assert fake_gemini.requests == []
    shrunk = vertex_session(inline_limit_bytes=30_000, max_image_side=100)
    fake_gemini.add_rule(text=BOXES)
    dets = shrunk.detect(photo(400, 300), "cats")
    np.testing.assert_allclose(dets.xyxy, [[40, 30, 200, 150]])  # mapped back to the original
    (req,) = fake_gemini.requests_of()
    assert Image.open(io.BytesIO(req.inline_data[0][1])).size == (100, 75)


def test_vertex_model_path_uses_the_configured_model(fake_gemini, vertex_session):
    session = vertex_session(model="gemini-2.5-pro")
    fake_gemini.add_rule(text=BOXES)
    session.detect(photo(), "cats")
    (req,) = fake_gemini.requests_of()
    assert req.model == "gemini-2.5-pro" and req.thinking_budget == 128
    assert req.model != MODEL

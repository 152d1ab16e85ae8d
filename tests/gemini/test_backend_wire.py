"""Wire contract of what vlmkit-gemini sends, through the real google-genai SDK.

These tests pin the paths, headers and field spellings our backends put on the wire. An SDK
upgrade that moves a path, renames a field or changes how a config key is spelled fails here with
a message naming what changed — before it fails against Google.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

genai = pytest.importorskip("google.genai")
pytest.importorskip("vlmkit_gemini")

from tests.gemini.conftest import (  # noqa: E402
    MODEL,
    TEST_API_KEY,
    TEST_LOCATION,
    TEST_PROJECT,
    TEST_TOKEN,
    photo,
    tiny_video,
)

BOXES = [{"box_2d": [100, 100, 500, 500], "label": "cat"}]


def _contract(actual, expected, what: str) -> None:
    assert actual == expected, (
        f"google-genai {genai.__version__} changed what vlmkit-gemini sends for {what}:\n"
        f"  expected {expected!r}\n  got      {actual!r}\n"
        "Check plugins/gemini/vlmkit_gemini/backend.py against the new SDK (and "
        "docs/reference/gemini-wire.md), then update this contract."
    )


def test_wire_contract_detect_request(fake_gemini, gemini_session):
    fake_gemini.add_rule(text=BOXES)
    session = gemini_session()
    session.detect(photo(), "cats", media_resolution="low", seed=1, temperature=0.0)

    (req,) = fake_gemini.requests_of()
    _contract((req.method, req.path), ("POST", f"/v1/models/{MODEL}:generateContent"), "the path")
    _contract(req.headers.get("x-goog-api-key"), TEST_API_KEY, "the API key header")
    _contract("authorization" in req.headers, False, "no Authorization header in api-key mode")
    _contract(req.headers.get("content-type"), "application/json", "the content type")
    _contract(req.headers.get("x-server-timeout"), "120", "the server timeout header (120 s)")
    _contract(sorted(req.body), ["contents", "generationConfig"], "the body keys")
    (content,) = req.body["contents"]
    _contract(content["role"], "user", "the content role")
    image, text = content["parts"]
    _contract(sorted(image), ["inlineData"], "the image part (first)")
    _contract(sorted(image["inlineData"]), ["data", "mime_type"], "inlineData")
    _contract(image["inlineData"]["mime_type"], "image/jpeg", "the image MIME type")
    _contract(sorted(text), ["text"], "the prompt part (last)")
    _contract(
        req.body["generationConfig"],
        {
            "temperature": 0.0,
            "maxOutputTokens": 16384,  # the detect default: room for thinking and the answer
            "seed": 1,
            "responseMimeType": "application/json",
            "responseSchema": {
                "type": "ARRAY",
                "items": {
                    "type": "OBJECT",
                    "properties": {
                        "box_2d": {"type": "ARRAY", "items": {"type": "INTEGER"}},
                        "label": {"type": "STRING"},
                    },
                    "required": ["box_2d", "label"],
                    "property_ordering": ["box_2d", "label"],
                },
            },
            "mediaResolution": "MEDIA_RESOLUTION_LOW",
            "thinkingConfig": {"thinking_budget": 0},
        },
        "generationConfig of a detect call",
    )
    sent = Image.open(io.BytesIO(req.inline_data[0][1]))
    _contract((sent.format, sent.size), ("JPEG", (320, 240)), "the encoded image")


def test_wire_contract_detect_schema_with_labels(fake_gemini, gemini_session):
    fake_gemini.add_rule(text=BOXES)
    gemini_session().detect(photo(), ["cat", "dog"])
    (req,) = fake_gemini.requests_of()
    _contract(
        req.body["generationConfig"]["responseSchema"]["items"]["properties"]["label"],
        {"type": "STRING", "format": "enum", "enum": ["cat", "dog"]},
        "the label enum of a detect call with a label list",
    )


def test_wire_contract_thinking_level_system_and_safety(fake_gemini, gemini_session):
    session = gemini_session(model="gemini-3.1-pro-preview")
    session.describe(photo(), "Hi?", system="Be terse.", thinking_level="high", safety="off")
    (req,) = fake_gemini.requests_of()
    _contract(
        sorted(req.body),
        ["contents", "generationConfig", "safetySettings", "systemInstruction"],
        "the body keys",
    )
    _contract(
        req.body["systemInstruction"],
        {"parts": [{"text": "Be terse."}], "role": "user"},
        "systemInstruction",
    )
    _contract(
        req.body["generationConfig"],
        {"maxOutputTokens": 8192, "thinkingConfig": {"thinking_level": "HIGH"}},
        "generationConfig with a thinking level",
    )
    _contract(
        req.body["safetySettings"][0],
        {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF"},
        "a safety setting",
    )


def test_wire_contract_video_upload_and_part(fake_gemini, gemini_session, tmp_path):
    clip = tiny_video(tmp_path / "clip.mp4", seconds=40)
    session = gemini_session()
    session.video(clip, fps=2, start=10, end=30.5, media_resolution="low")
    start, chunk = fake_gemini.requests_of("upload_start", "upload_chunk")
    _contract((start.method, start.path), ("POST", "/upload/v1/files"), "the upload start")
    _contract(
        (
            start.headers.get("x-goog-upload-protocol"),
            start.headers.get("x-goog-upload-command"),
            start.headers.get("x-goog-upload-header-content-type"),
        ),
        ("resumable", "start", "video/mp4"),
        "the upload start headers",
    )
    _contract(
        start.body,
        {
            "file": {
                "display_name": "clip.mp4",
                "mime_type": "video/mp4",
                "size_bytes": clip.stat().st_size,
            }
        },
        "the upload start body",
    )
    _contract(chunk.headers.get("x-goog-upload-command"), "upload, finalize", "the last chunk")
    (get,) = fake_gemini.requests_of("files_get")
    _contract(get.method, "GET", "the processing poll")
    (req,) = fake_gemini.requests_of()
    video, _text = req.body["contents"][0]["parts"]
    _contract(sorted(video), ["fileData", "videoMetadata"], "the video part (first)")
    _contract(sorted(video["fileData"]), ["file_uri", "mime_type"], "fileData")
    _contract(
        video["fileData"]["file_uri"].rsplit("/files/", 1)[0],
        f"{fake_gemini.base_url}/v1",
        "the file URI returned by the upload",
    )
    _contract(
        video["videoMetadata"],
        {"end_offset": "30.5s", "fps": 2.0, "start_offset": "10s"},
        "videoMetadata",
    )
    _contract(
        req.body["generationConfig"],
        {"maxOutputTokens": 16384, "mediaResolution": "MEDIA_RESOLUTION_LOW"},
        "generationConfig of a video call",
    )
    session.close()
    (delete,) = fake_gemini.requests_of("files_delete")
    _contract((delete.method, delete.path), ("DELETE", get.path), "the cleanup")


def test_wire_contract_vertex_project_and_express(fake_gemini, vertex_session):
    vertex_session().describe(photo())
    vertex_session(api_key=TEST_API_KEY).describe(photo())
    project, express = fake_gemini.requests_of()
    _contract(
        project.path,
        f"/v1beta1/projects/{TEST_PROJECT}/locations/{TEST_LOCATION}/publishers/google/models/"
        f"{MODEL}:generateContent",
        "the Vertex project path",
    )
    _contract(project.headers.get("authorization"), f"Bearer {TEST_TOKEN}", "Vertex auth")
    _contract("x-goog-api-key" in project.headers, False, "no API key in Vertex project mode")
    _contract(
        express.path,
        f"/v1beta1/publishers/google/models/{MODEL}:generateContent",
        "the express path",
    )
    _contract(express.headers.get("x-goog-api-key"), TEST_API_KEY, "express auth")
    _contract(sorted(project.body["contents"][0]["parts"][0]), ["inlineData"], "Vertex image part")

"""The fake Gemini server, driven through the real google-genai SDK (api-key and Vertex modes)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.client
import io
import json
import random
from concurrent.futures import ThreadPoolExecutor

import pytest

genai = pytest.importorskip("google.genai")
httpx2 = pytest.importorskip("httpx2")

from google.genai import errors, types  # noqa: E402

from tests.gemini.conftest import MODEL, TEST_API_KEY, TEST_TOKEN  # noqa: E402
from vlmkit_gemini.testing.fake_server import MIB, FakeGemini  # noqa: E402

# Bytes whose base64 needs the URL-safe alphabet ('-' and '_'): catches a plain b64decode.
IMAGE_BYTES = bytes(range(256)) * 3


def _image_part(data: bytes = IMAGE_BYTES) -> types.Part:
    return types.Part.from_bytes(data=data, mime_type="image/png")


def _raw_post(fake: FakeGemini, path: str, body: dict, headers: dict | None = None):
    """POST without the SDK (for requests it refuses to make); returns (status, json)."""
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    try:
        payload = json.dumps(body)
        conn.request("POST", path, payload, {"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


def _retry_delay(err: errors.APIError) -> str | None:
    for detail in err.details["error"].get("details", []):
        if detail.get("@type") == "type.googleapis.com/google.rpc.RetryInfo":
            return detail["retryDelay"]
    return None


HELLO = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


# ---- generateContent ------------------------------------------------------------------------


def test_generate_content_returns_text_and_usage(fake_gemini, make_gemini_client):
    fake_gemini.add_rule(prompt_contains="cat", text='{"label": "cat"}')
    response = make_gemini_client().models.generate_content(model=MODEL, contents="is it a cat?")

    assert response.text == '{"label": "cat"}'
    usage = response.usage_metadata
    assert usage.prompt_token_count == len("is it a cat?") // 4
    assert usage.candidates_token_count == len('{"label": "cat"}') // 4 + 1
    assert usage.thoughts_token_count == 32  # thinking was not disabled
    assert usage.total_token_count == (
        usage.prompt_token_count + usage.candidates_token_count + usage.thoughts_token_count
    )
    assert response.model_version == MODEL
    assert response.response_id
    (req,) = fake_gemini.requests_of("generate")
    assert (req.path_kind, req.model, req.prompt_text) == ("gemini", MODEL, "is it a cat?")
    assert req.api_key == TEST_API_KEY
    assert req.status == 200


def test_default_answer_and_first_matching_rule_wins(fake_gemini, make_gemini_client):
    fake_gemini.default_text = "default"
    fake_gemini.add_rule(model="gemini-2.5-pro", text="pro")
    once = fake_gemini.add_rule(prompt_contains="dog", text="dog, once", times=1)
    fake_gemini.add_rule(prompt_contains="dog", text="dog, always")
    models = make_gemini_client().models

    assert models.generate_content(model="gemini-2.5-pro", contents="dog").text == "pro"
    assert models.generate_content(model=MODEL, contents="a dog").text == "dog, once"
    assert models.generate_content(model=MODEL, contents="a dog").text == "dog, always"
    assert models.generate_content(model=MODEL, contents="a bird").text == "default"
    assert once.hits == 1 and once.exhausted


def test_inline_image_is_decoded_byte_for_byte(fake_gemini, make_gemini_client):
    make_gemini_client().models.generate_content(
        model=MODEL, contents=[_image_part(), "what is this?"]
    )
    (req,) = fake_gemini.requests_of()
    assert req.inline_data == [("image/png", IMAGE_BYTES)]
    assert req.prompt_text == "what is this?"


def test_config_keys_are_recorded_in_snake_case(fake_gemini, make_gemini_client):
    schema = {"type": "OBJECT", "properties": {"boxLabel": {"type": "STRING"}}}
    config = types.GenerateContentConfig(
        system_instruction="Answer in JSON.",
        temperature=0.0,
        max_output_tokens=256,
        response_mime_type="application/json",
        response_schema=schema,
        media_resolution=types.MediaResolution.MEDIA_RESOLUTION_LOW,
        thinking_config=types.ThinkingConfig(thinking_budget=0),
    )
    response = make_gemini_client().models.generate_content(
        model=MODEL, contents=[_image_part(), "label"], config=config
    )

    (req,) = fake_gemini.requests_of()
    cfg = req.generation_config
    assert cfg["thinking_config"]["thinking_budget"] == 0
    assert cfg["response_mime_type"] == "application/json"
    assert cfg["media_resolution"] == "MEDIA_RESOLUTION_LOW"
    assert cfg["max_output_tokens"] == 256
    assert req.response_schema == schema  # property names keep their spelling
    assert req.system_instruction == "Answer in JSON."
    # 66 tokens for a low-resolution image, and no thoughts with thinking disabled.
    usage = response.usage_metadata
    assert usage.prompt_token_count == 66 + len("label") // 4 + len("Answer in JSON.") // 4
    assert usage.thoughts_token_count is None


def test_stream_yields_chunks_that_join_to_the_text(fake_gemini, make_gemini_client):
    fake_gemini.add_rule(text="hello streaming world", stream_chunks=3)
    chunks = list(
        make_gemini_client().models.generate_content_stream(model=MODEL, contents="stream")
    )

    assert len(chunks) == 3
    assert "".join(c.text for c in chunks) == "hello streaming world"
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert fake_gemini.requests_of("stream")[0].query == {"alt": "sse"}


def test_error_inside_a_stream_raises_after_earlier_chunks(fake_gemini, make_gemini_client):
    fake_gemini.add_rule(text="abcdef", stream_chunks=3, status=503, stream_error_after=1)
    seen = []
    stream = make_gemini_client().models.generate_content_stream(model=MODEL, contents="x")
    with pytest.raises(errors.ServerError) as info:
        for chunk in stream:
            seen.append(chunk.text)
    assert seen == ["ab"]
    assert info.value.code == 503


def test_count_tokens(fake_gemini, make_gemini_client):
    result = make_gemini_client().models.count_tokens(
        model=MODEL, contents=[_image_part(), "x" * 40]
    )
    assert result.total_tokens == 258 + 10
    assert fake_gemini.calls["count_tokens"] == 1


def test_async_client_uses_the_same_fake(fake_gemini, make_gemini_client):
    fake_gemini.add_rule(text="async ok")
    client = make_gemini_client()

    async def main():
        answers = await asyncio.gather(
            *(client.aio.models.generate_content(model=MODEL, contents=str(i)) for i in range(4))
        )
        await client.aio.aclose()
        return [a.text for a in answers]

    assert asyncio.run(main()) == ["async ok"] * 4


# ---- outcomes that do not raise -------------------------------------------------------------


def test_blocked_prompt_has_no_text_and_a_block_reason(fake_gemini, make_gemini_client):
    fake_gemini.add_rule(block_reason="SAFETY")
    response = make_gemini_client().models.generate_content(model=MODEL, contents="bad")

    assert response.text is None
    assert response.candidates is None
    assert response.prompt_feedback.block_reason == types.BlockedReason.SAFETY


def test_candidate_blocked_for_safety(fake_gemini, make_gemini_client):
    fake_gemini.add_rule(candidate_safety=True)
    response = make_gemini_client().models.generate_content(model=MODEL, contents="bad")

    assert response.text is None
    assert response.candidates[0].finish_reason == types.FinishReason.SAFETY


def test_max_tokens_returns_partial_text(fake_gemini, make_gemini_client):
    fake_gemini.add_rule(text='{"label": "ca', finish_reason="MAX_TOKENS")
    config = types.GenerateContentConfig(
        response_mime_type="application/json",
        response_schema={"type": "OBJECT", "properties": {"label": {"type": "STRING"}}},
    )
    response = make_gemini_client().models.generate_content(
        model=MODEL, contents="label", config=config
    )

    assert response.text == '{"label": "ca'
    assert response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert response.parsed is None


# ---- errors ---------------------------------------------------------------------------------


def test_429_carries_retry_delay_in_details(fake_gemini, make_gemini_client):
    fake_gemini.fail_next(429, retry_delay=1)
    models = make_gemini_client().models

    with pytest.raises(errors.ClientError) as info:
        models.generate_content(model=MODEL, contents="x")
    err = info.value
    assert (err.code, err.status) == (429, "RESOURCE_EXHAUSTED")
    assert _retry_delay(err) == "1s"
    assert models.generate_content(model=MODEL, contents="x").text == "ok"  # times=1


def test_503_is_a_server_error(fake_gemini, make_gemini_client):
    fake_gemini.fail_next(503)
    with pytest.raises(errors.ServerError) as info:
        make_gemini_client().models.generate_content(model=MODEL, contents="x")
    assert (info.value.code, info.value.status) == (503, "UNAVAILABLE")
    assert _retry_delay(info.value) is None


def test_html_error_page_from_a_proxy(fake_gemini, make_gemini_client):
    fake_gemini.add_rule(html_error="<html><body>Bad Gateway</body></html>", times=1)
    with pytest.raises(errors.ServerError) as info:
        make_gemini_client().models.generate_content(model=MODEL, contents="x")
    assert info.value.code == 502
    assert info.value.status == "Bad Gateway"


def test_sdk_retry_options_retry_scripted_failures(fake_gemini, make_gemini_client):
    fake_gemini.fail_next(503, times=2)
    retry = types.HttpRetryOptions(
        attempts=3, initial_delay=0.01, max_delay=0.02, jitter=0, http_status_codes=[503]
    )
    response = make_gemini_client(retry_options=retry).models.generate_content(
        model=MODEL, contents="x"
    )
    assert response.text == "ok"
    assert [r.status for r in fake_gemini.requests_of()] == [503, 503, 200]


def test_fail_ratio_fails_an_exact_deterministic_fraction(fake_gemini, make_gemini_client):
    def outcomes() -> list[int]:
        models = make_gemini_client().models
        out = []
        for i in range(20):
            try:
                models.generate_content(model=MODEL, contents=str(i))
                out.append(200)
            except errors.ClientError as err:
                assert _retry_delay(err) == "1s"
                out.append(err.code)
        return out

    fake_gemini.fail_ratio(429, 0.2, seed=7, retry_delay=1)
    first = outcomes()
    fake_gemini.reset()
    fake_gemini.fail_ratio(429, 0.2, seed=7, retry_delay=1)
    assert first.count(429) == 4
    assert outcomes() == first


def test_dropped_connection_is_a_transport_error(fake_gemini, make_gemini_client):
    fake_gemini.add_rule(drop_connection=True, times=1)
    models = make_gemini_client().models
    with pytest.raises(httpx2.TransportError):  # RemoteProtocolError: disconnected
        models.generate_content(model=MODEL, contents="x")
    assert models.generate_content(model=MODEL, contents="x").text == "ok"
    assert [r.status for r in fake_gemini.requests_of()] == [None, 200]


def test_client_timeout_is_a_read_timeout(fake_gemini, make_gemini_client):
    fake_gemini.add_rule(delay_s=1.0, times=1)
    with pytest.raises(httpx2.ReadTimeout):
        make_gemini_client(timeout=200).models.generate_content(model=MODEL, contents="x")
    assert fake_gemini.requests_of()[0].headers["X-Server-Timeout"] == "1"


def test_request_over_the_size_limit_is_rejected(fake_gemini, make_gemini_client):
    fake_gemini.max_request_bytes = 64 * 1024
    big = random.Random(0).randbytes(100 * 1024)
    with pytest.raises(errors.ClientError) as info:
        make_gemini_client().models.generate_content(model=MODEL, contents=[_image_part(big)])
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
    assert info.value.message == "Request payload size exceeds the limit: 65536 bytes."


def test_malformed_base64_is_a_400(fake_gemini):
    body = {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "@@@"}}]}]}
    status, answer = _raw_post(
        fake_gemini, f"/v1/models/{MODEL}:generateContent", body, {"x-goog-api-key": "k"}
    )
    assert (status, answer["error"]["status"]) == (400, "INVALID_ARGUMENT")


# ---- auth -----------------------------------------------------------------------------------


def test_invalid_api_key_is_rejected_without_echoing_it(fake_gemini, make_gemini_client):
    fake_gemini.invalid_keys.add("revoked-key")
    with pytest.raises(errors.ClientError) as info:
        make_gemini_client(api_key="revoked-key").models.generate_content(model=MODEL, contents="x")
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
    assert info.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert "revoked-key" not in json.dumps(info.value.details)
    assert "revoked-key" not in repr(fake_gemini.requests[0].headers)


def test_missing_credentials_are_rejected(fake_gemini):
    vertex = f"/v1beta1/projects/p/locations/l/publishers/google/models/{MODEL}:generateContent"
    express = f"/v1beta1/publishers/google/models/{MODEL}:generateContent"

    status, body = _raw_post(fake_gemini, f"/v1/models/{MODEL}:generateContent", HELLO)
    assert (status, body["error"]["status"]) == (403, "PERMISSION_DENIED")
    status, body = _raw_post(fake_gemini, vertex, HELLO, {"x-goog-api-key": "k"})
    assert (status, body["error"]["status"]) == (401, "UNAUTHENTICATED")
    status, body = _raw_post(fake_gemini, express, HELLO)
    assert (status, body["error"]["status"]) == (403, "PERMISSION_DENIED")
    status, _ = _raw_post(fake_gemini, vertex, HELLO, {"Authorization": "Bearer t"})
    assert status == 200


def test_vertex_project_path_and_bearer_token(fake_gemini, make_vertex_client):
    fake_gemini.add_rule(path_kind="vertex", text="from vertex")
    response = make_vertex_client().models.generate_content(
        model=MODEL, contents=[_image_part(), "hi"]
    )

    assert response.text == "from vertex"
    assert response.create_time is not None
    (req,) = fake_gemini.requests_of()
    assert req.path == (
        "/v1beta1/projects/test-project/locations/us-central1"
        f"/publishers/google/models/{MODEL}:generateContent"
    )
    assert (req.path_kind, req.project, req.location) == ("vertex", "test-project", "us-central1")
    assert req.headers["Authorization"] == f"Bearer {TEST_TOKEN}"
    assert req.bearer_token == TEST_TOKEN
    assert "x-goog-api-key" not in req.headers
    assert req.inline_data == [("image/png", IMAGE_BYTES)]


def test_vertex_gs_uri_is_passed_through(fake_gemini, make_vertex_client):
    part = types.Part.from_uri(file_uri="gs://bucket/clip.mp4", mime_type="video/mp4")
    make_vertex_client(location="global").models.generate_content(model=MODEL, contents=[part])
    (req,) = fake_gemini.requests_of()
    assert req.location == "global"
    assert req.file_data == [("video/mp4", "gs://bucket/clip.mp4")]


def test_vertex_express_mode_uses_the_api_key(fake_gemini, make_express_client):
    make_express_client().models.generate_content(model=MODEL, contents="hi")
    (req,) = fake_gemini.requests_of()
    assert req.path == f"/v1beta1/publishers/google/models/{MODEL}:generateContent"
    assert req.path_kind == "express"
    assert req.api_key == TEST_API_KEY
    assert "authorization" not in req.headers


# ---- concurrency ----------------------------------------------------------------------------


def test_concurrent_requests_overlap(fake_gemini, make_gemini_client):
    fake_gemini.latency_s = 0.2
    models = make_gemini_client().models
    n = 32

    def call(i: int) -> str:
        return models.generate_content(model=MODEL, contents=f"item {i}").text

    with ThreadPoolExecutor(max_workers=n) as pool:
        answers = list(pool.map(call, range(n)))

    assert answers == ["ok"] * n
    assert fake_gemini.max_in_flight >= 8  # measured by the server: far from sequential
    assert {r.status for r in fake_gemini.requests} == {200}
    assert fake_gemini.in_flight == 0


# ---- Files API ------------------------------------------------------------------------------


def test_upload_in_two_chunks_then_get_and_delete(fake_gemini, make_gemini_client):
    data = random.Random(1).randbytes(9 * MIB)
    files = make_gemini_client().files

    uploaded = files.upload(
        file=io.BytesIO(data), config={"mime_type": "application/pdf", "display_name": "doc"}
    )

    assert uploaded.name.startswith("files/")
    assert uploaded.state == types.FileState.ACTIVE
    assert uploaded.size_bytes == len(data)
    assert uploaded.sha256_hash == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert uploaded.uri.startswith(fake_gemini.base_url)
    assert fake_gemini.file_bytes(uploaded.name) == data
    chunks = fake_gemini.requests_of("upload_chunk")
    assert [(c.upload_command, c.upload_offset) for c in chunks] == [
        ("upload", 0),
        ("upload, finalize", 8 * MIB),
    ]

    assert files.get(name=uploaded.name).display_name == "doc"
    assert [f.name for f in files.list()] == [uploaded.name]
    files.delete(name=uploaded.name)
    assert fake_gemini.files == {}
    with pytest.raises(errors.ClientError) as info:
        files.get(name=uploaded.name)
    assert (info.value.code, info.value.status) == (403, "PERMISSION_DENIED")


def test_video_upload_is_polled_from_processing_to_active(fake_gemini, make_gemini_client):
    fake_gemini.processing_gets = 2
    client = make_gemini_client()
    video = client.files.upload(file=io.BytesIO(b"\x00" * 1000), config={"mime_type": "video/mp4"})
    assert video.state == types.FileState.PROCESSING

    part = types.Part(
        file_data=types.FileData(file_uri=video.uri, mime_type=video.mime_type),
        video_metadata=types.VideoMetadata(fps=0.5, start_offset="10s", end_offset="30s"),
    )
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=MODEL, contents=[part, "chapters"])
    assert (info.value.code, info.value.status) == (400, "FAILED_PRECONDITION")

    polls = 0
    while video.state == types.FileState.PROCESSING:
        video = client.files.get(name=video.name)
        polls += 1
    assert (video.state, polls) == (types.FileState.ACTIVE, 2)

    client.models.generate_content(model=MODEL, contents=[part, "chapters"])
    req = fake_gemini.requests_of()[-1]
    assert req.file_data == [("video/mp4", video.uri)]
    assert req.video_metadata == [{"fps": 0.5, "start_offset": "10s", "end_offset": "30s"}]


def test_upload_errors_raise_without_the_sdk_chunk_retry_loop(fake_gemini, make_gemini_client):
    files = make_gemini_client().files
    fake_gemini.fail_next(429, op="upload_start")
    with pytest.raises(errors.ClientError):
        files.upload(file=io.BytesIO(b"abc"), config={"mime_type": "text/plain"})

    fake_gemini.fail_next(503, op="upload_chunk")
    with pytest.raises(errors.ServerError):
        files.upload(file=io.BytesIO(b"abc"), config={"mime_type": "text/plain"})
    # The error carries x-goog-upload-status, so the SDK does not resend the chunk (its own
    # chunk retry loop would, after sleeping): one start and one chunk per upload.
    assert len(fake_gemini.requests_of("upload_start")) == 2
    assert len(fake_gemini.requests_of("upload_chunk")) == 1
    assert fake_gemini.files == {}


def test_unknown_file_is_permission_denied(fake_gemini, make_gemini_client):
    part = types.Part.from_uri(
        file_uri=f"{fake_gemini.base_url}/v1/files/nope", mime_type="image/png"
    )
    with pytest.raises(errors.ClientError) as info:
        make_gemini_client().models.generate_content(model=MODEL, contents=[part])
    assert (info.value.code, info.value.status) == (403, "PERMISSION_DENIED")


def test_preloaded_file_can_be_referenced(fake_gemini, make_gemini_client):
    resource = fake_gemini.add_file(b"\x89PNG...", "image/png")
    part = types.Part.from_uri(file_uri=resource["uri"], mime_type="image/png")
    make_gemini_client().models.generate_content(model=MODEL, contents=[part])
    assert fake_gemini.requests_of()[0].file_data == [("image/png", resource["uri"])]


# ---- lifecycle ------------------------------------------------------------------------------


def test_context_manager_starts_and_stops_the_server():
    with FakeGemini() as fake:
        status, _ = _raw_post(
            fake, f"/v1/models/{MODEL}:generateContent", HELLO, {"x-goog-api-key": "k"}
        )
        assert status == 200
        port = fake.port
    with pytest.raises(ConnectionRefusedError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()


# ---- wire contract --------------------------------------------------------------------------
#
# The fake accepts both field spellings, so it would keep passing if the SDK changed what it
# sends. These tests pin what google-genai sends today, so that an upgrade which changes a path,
# a header or a field spelling fails here, with a message saying what to re-check.


def _contract(actual, expected, what: str) -> None:
    assert actual == expected, (
        f"google-genai {genai.__version__} changed the wire format of {what}:\n"
        f"  expected {expected!r}\n  got      {actual!r}\n"
        "Re-check docs/reference/gemini-wire.md and "
        "plugins/gemini/vlmkit_gemini/testing/fake_server.py, then update this contract."
    )


def test_wire_contract_generate_content(fake_gemini, make_gemini_client):
    config = types.GenerateContentConfig(
        system_instruction="sys",
        temperature=0.0,
        max_output_tokens=8,
        response_mime_type="application/json",
        media_resolution=types.MediaResolution.MEDIA_RESOLUTION_LOW,
        thinking_config=types.ThinkingConfig(thinking_budget=0),
    )
    make_gemini_client().models.generate_content(
        model=MODEL, contents=[_image_part(), "hi"], config=config
    )
    (req,) = fake_gemini.requests_of()
    _contract((req.method, req.path), ("POST", f"/v1/models/{MODEL}:generateContent"), "the path")
    _contract(req.headers.get("x-goog-api-key"), TEST_API_KEY, "the x-goog-api-key header")
    _contract(req.headers.get("content-type"), "application/json", "the content type")
    _contract(
        sorted(req.body), ["contents", "generationConfig", "systemInstruction"], "the body keys"
    )
    parts = req.body["contents"][0]["parts"]
    _contract(sorted(parts[0]), ["inlineData"], "an inline part")
    _contract(sorted(parts[0]["inlineData"]), ["data", "mime_type"], "inlineData")
    _contract(
        base64.urlsafe_b64decode(parts[0]["inlineData"]["data"]), IMAGE_BYTES, "inline base64"
    )
    _contract(parts[1], {"text": "hi"}, "a text part")
    _contract(
        req.body["generationConfig"],
        {
            "temperature": 0.0,
            "maxOutputTokens": 8,
            "responseMimeType": "application/json",
            "mediaResolution": "MEDIA_RESOLUTION_LOW",
            "thinkingConfig": {"thinking_budget": 0},
        },
        "generationConfig",
    )


def test_wire_contract_vertex_and_express(fake_gemini, make_vertex_client, make_express_client):
    make_vertex_client().models.generate_content(model=MODEL, contents="hi")
    make_express_client().models.generate_content(model=MODEL, contents="hi")
    vertex, express = fake_gemini.requests_of()
    _contract(
        vertex.path,
        f"/v1beta1/projects/test-project/locations/us-central1/publishers/google/models/{MODEL}"
        ":generateContent",
        "the Vertex path",
    )
    _contract(vertex.headers.get("authorization"), f"Bearer {TEST_TOKEN}", "Vertex auth")
    _contract(express.path, f"/v1beta1/publishers/google/models/{MODEL}:generateContent", "express")
    _contract(express.headers.get("x-goog-api-key"), TEST_API_KEY, "express auth")


def test_wire_contract_resumable_upload(fake_gemini, make_gemini_client):
    make_gemini_client().files.upload(
        file=io.BytesIO(b"abc"), config={"mime_type": "text/plain", "display_name": "t"}
    )
    start, chunk = fake_gemini.requests_of("upload_start", "upload_chunk")
    _contract((start.method, start.path), ("POST", "/upload/v1/files"), "the upload start")
    upload_headers = {
        name.lower(): value
        for name, value in start.headers.items()
        if name.lower().startswith("x-goog-upload-")
    }
    _contract(
        upload_headers,
        {
            "x-goog-upload-protocol": "resumable",
            "x-goog-upload-command": "start",
            "x-goog-upload-header-content-length": "3",
            "x-goog-upload-header-content-type": "text/plain",
        },
        "the upload start headers",
    )
    _contract(start.headers.get("x-goog-api-key"), TEST_API_KEY, "the upload start auth")
    _contract(
        start.body,
        {"file": {"display_name": "t", "mime_type": "text/plain", "size_bytes": 3}},
        "the upload start body",
    )
    _contract(chunk.path, "/upload/v1/files", "the chunk URL (the fake's x-goog-upload-url)")
    _contract(
        (chunk.headers.get("x-goog-upload-command"), chunk.headers.get("x-goog-upload-offset")),
        ("upload, finalize", "0"),
        "the chunk headers",
    )
    _contract("x-goog-api-key" in chunk.headers, False, "the chunk auth (no key expected)")

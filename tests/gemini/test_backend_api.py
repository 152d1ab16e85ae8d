"""gemini-api end to end: vlmkit.Session → vlmkit-gemini → the real google-genai SDK → the fake."""

from __future__ import annotations

import base64
import io
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("google.genai")
pytest.importorskip("vlmkit_gemini")
httpx2 = pytest.importorskip("httpx2")

import vlmkit  # noqa: E402
from tests.gemini.conftest import MODEL, TEST_API_KEY, photo  # noqa: E402
from vlmkit import AuthError, ConfigError, UnsupportedTask  # noqa: E402
from vlmkit_gemini.backend import SEGMENTATION_MODELS, GeminiApiBackend  # noqa: E402
from vlmkit_gemini.errors import SettingRefused  # noqa: E402
from vlmkit_gemini.lifecycle import RetiredModelWarning, RetiredTable  # noqa: E402
from vlmkit_gemini.pricing import Price  # noqa: E402

BOXES = [{"box_2d": [100, 100, 500, 500], "label": "cat"}, {"box_2d": [0, 500, 1000, 1000]}]


def _mask_png(width: int = 8, height: int = 8) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width), 255, np.uint8), "L").save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


# ---- registration ---------------------------------------------------------------------------


def test_both_backends_are_registered_through_the_entry_point():
    backends = vlmkit.Session().backends()
    for name in ("gemini-api", "gemini-vertex"):
        info = backends[name]
        assert info.tasks == {"describe", "detect", "segment", "ocr", "video", "points"}
        assert info.media == {"image", "video"}
        assert info.distribution.startswith("vlmkit-gemini ")
        assert info.plugin == "gemini"


# ---- the five tasks -------------------------------------------------------------------------


def test_detect_sends_image_first_json_mode_schema_and_no_thinking(fake_gemini, gemini_session):
    fake_gemini.add_rule(prompt_contains="Detect", text=BOXES)
    session = gemini_session()
    image = photo(400, 300)

    dets = session.detect(image, ["cat", "dog"])

    np.testing.assert_allclose(dets.xyxy, [[40, 30, 200, 150], [200, 0, 400, 300]])
    assert dets.labels == ("cat", "")
    assert dets.finish is vlmkit.FinishReason.STOP
    (req,) = fake_gemini.requests_of()
    assert (req.path_kind, req.model) == ("gemini", MODEL)
    parts = req.body["contents"][0]["parts"]
    assert list(parts[0]) == ["inlineData"] and list(parts[-1]) == ["text"]
    mime, data = req.inline_data[0]
    assert mime == "image/jpeg"
    assert Image.open(io.BytesIO(data)).size == (400, 300)
    assert '"cat"' in req.prompt_text and "box_2d" in req.prompt_text
    config = req.generation_config
    assert config["response_mime_type"] == "application/json"
    items = req.response_schema["items"]
    assert items["properties"]["box_2d"] == {"type": "ARRAY", "items": {"type": "INTEGER"}}
    assert items["required"] == ["box_2d", "label"]
    assert req.thinking_budget == 0  # Google's advice for detection on 2.5 Flash
    usage = dets.provenance.usage
    assert usage.prompt_tokens == 258 + len(req.prompt_text) // 4
    assert usage.output_tokens > 0 and usage.thinking_tokens == 0
    assert usage.cost_usd == pytest.approx(
        (usage.prompt_tokens * 0.10 + usage.output_tokens * 0.40) / 1e6
    )
    assert usage.latency_s > 0
    assert dets.provenance.backend == "gemini-api" and dets.provenance.model == MODEL


def test_a_label_list_constrains_the_label_in_the_detect_schema(fake_gemini, gemini_session):
    fake_gemini.add_rule(text=BOXES)
    session = gemini_session()
    session.detect(photo(), ["cat", "dog", "cat"])  # the caller's exact classes
    session.detect(photo(), "cats")  # a description of the things to find: free labels
    session.detect(photo(), ["cat"], structured_output=False)
    listed, described, unconstrained = fake_gemini.requests_of()
    assert listed.response_schema["items"]["properties"]["label"] == {
        "type": "STRING",
        "format": "enum",
        "enum": ["cat", "dog"],
    }
    assert listed.response_schema["items"]["required"] == ["box_2d", "label"]
    assert described.response_schema["items"]["properties"]["label"] == {"type": "STRING"}
    assert unconstrained.response_schema is None


def test_per_call_options_reach_the_generation_config(fake_gemini, gemini_session):
    fake_gemini.add_rule(text=BOXES)
    session = gemini_session()
    session.detect(
        photo(),
        "cars",
        temperature=0.0,
        top_p=0.5,
        top_k=4,
        seed=7,
        max_output_tokens=512,
        media_resolution="low",
        thinking_budget=1024,
        safety="block_only_high",
        structured_output=False,
    )
    (req,) = fake_gemini.requests_of()
    config = req.generation_config
    assert config["temperature"] == 0.0 and config["top_p"] == 0.5 and config["top_k"] == 4
    assert config["seed"] == 7 and config["max_output_tokens"] == 512
    assert config["media_resolution"] == "MEDIA_RESOLUTION_LOW"
    assert config["thinking_config"] == {"thinking_budget": 1024}
    assert "response_schema" not in config  # structured_output=False: JSON mode only
    assert config["response_mime_type"] == "application/json"
    assert {s["threshold"] for s in req.safety_settings} == {"BLOCK_ONLY_HIGH"}
    assert len(req.safety_settings) == 4


def test_session_wide_option_defaults_and_per_call_override(fake_gemini, gemini_session):
    session = gemini_session(temperature=0.2, media_resolution="high")
    session.describe(photo())
    session.describe(photo(), temperature=1.0)
    first, second = fake_gemini.requests_of()
    assert first.generation_config["temperature"] == 0.2
    assert second.generation_config["temperature"] == 1.0
    assert second.media_resolution == "MEDIA_RESOLUTION_HIGH"
    assert "thinking_config" not in first.generation_config  # describe: the model's default


def test_describe_one_image_and_vqa_over_many(fake_gemini, gemini_session):
    fake_gemini.add_rule(prompt_contains="What is shown", text="A purple square.")
    fake_gemini.add_rule(prompt_contains="Which is brighter", text="The second one.")
    session = gemini_session()

    one = session.describe(photo())
    many = session.describe([photo(seed=1), photo(64, 48, seed=2)], "Which is brighter?")

    assert one.text == "A purple square." and many.text == "The second one."
    first, second = fake_gemini.requests_of()
    assert len(first.inline_data) == 1
    assert [Image.open(io.BytesIO(d)).size for _, d in second.inline_data] == [(320, 240), (64, 48)]
    parts = second.body["contents"][0]["parts"]
    assert [next(iter(p)) for p in parts] == ["inlineData", "inlineData", "text"]
    assert "response_mime_type" not in second.generation_config


def test_segment_gemini_25_png_masks(fake_gemini, gemini_session):
    fake_gemini.add_rule(
        text=[{"box_2d": [100, 100, 500, 500], "label": "cup", "mask": _mask_png()}]
    )
    session = gemini_session()
    dets = session.segment(photo(400, 300), "cups")

    (det,) = dets
    assert det.label == "cup" and det.mask is not None
    assert det.mask.binary.all() and det.mask.area == 160 * 120
    (req,) = fake_gemini.requests_of()
    assert "segmentation mask in key" in req.prompt_text and "polygon" not in req.prompt_text
    assert req.generation_config["response_mime_type"] == "application/json"
    assert "response_schema" not in req.generation_config
    assert req.thinking_budget == 0


def test_segment_gemini_3_polygon_masks(fake_gemini, gemini_session):
    polygon = [[100, 100], [500, 100], [500, 500], [100, 500]]
    fake_gemini.add_rule(
        text={"boxes": [{"box_2d": [100, 100, 500, 500], "label": "cup", "mask": polygon}]}
    )
    session = gemini_session(model="gemini-3-flash-preview")
    dets = session.segment(photo(400, 300), "cups")

    (det,) = dets
    assert det.mask is not None
    np.testing.assert_allclose(det.box.xyxy, [40, 30, 200, 150])
    assert det.mask.area == pytest.approx(160 * 120, rel=0.05)
    (req,) = fake_gemini.requests_of()
    assert "polygon" in req.prompt_text and '"boxes"' in req.prompt_text
    assert "for the cups" in req.prompt_text
    assert dets.provenance.prompt == req.prompt_text  # provenance keeps what was sent
    assert req.generation_config["thinking_config"] == {"thinking_level": "LOW"}
    assert "thinking_budget" not in req.generation_config["thinking_config"]


def test_ocr_text_and_boxes(fake_gemini, gemini_session):
    fake_gemini.add_rule(prompt_contains="Output only the text", text="STOP\nNo parking")
    fake_gemini.add_rule(
        prompt_contains="box_2d", text=[{"text": "STOP", "box_2d": [0, 0, 500, 1000]}]
    )
    session = gemini_session()

    plain = session.ocr(photo(400, 300))
    boxed = session.ocr(photo(400, 300), boxes=True)

    assert plain.text == "STOP\nNo parking"
    assert [b.text for b in boxed.blocks] == ["STOP"]
    np.testing.assert_allclose(boxed.blocks[0].box.xyxy, [0, 0, 400, 150])
    first, second = fake_gemini.requests_of()
    assert "response_mime_type" not in first.generation_config and first.thinking_budget is None
    assert second.generation_config["response_mime_type"] == "application/json"
    assert second.thinking_budget == 0  # OCR with boxes is a spatial task


def test_system_instruction_and_caller_response_schema(fake_gemini, gemini_session):
    schema = {"type": "object", "properties": {"count": {"type": "integer"}}}
    session = gemini_session()
    session.describe(photo(), "How many?", system="Be terse.", json=True, response_schema=schema)
    (req,) = fake_gemini.requests_of()
    assert req.system_instruction == "Be terse."
    assert req.generation_config["response_mime_type"] == "application/json"
    assert req.response_schema == schema


# ---- settings, capabilities and validation --------------------------------------------------


def test_unknown_and_invalid_options_are_refused_by_the_session(fake_gemini, gemini_session):
    session = gemini_session()
    with pytest.raises(ConfigError, match=r"no option.*thinking_budget"):
        session.detect(photo(), "cats", think=0)
    with pytest.raises(ConfigError, match=r"media_resolution"):
        session.detect(photo(), "cats", media_resolution="ultra")
    with pytest.raises(ConfigError, match=r"temperature=3.5 must be at most 2"):
        session.describe(photo(), temperature=3.5)
    with pytest.raises(ConfigError, match=r"not both"):
        session.describe(photo(), thinking_budget=0, thinking_level="low")
    assert fake_gemini.requests_of() == []


def test_unknown_construction_argument_is_a_config_error(fake_gemini):
    with pytest.raises(ConfigError, match=r"no argument.*colour"):
        vlmkit.Session(backend="gemini-api", api_key="k", base_url=fake_gemini.base_url, colour=1)


def test_construction_settings_given_as_strings_are_converted(fake_gemini):
    """The CLI's --config passes strings; the declared settings convert them."""
    info = vlmkit.Session().backends()["gemini-api"]
    assert {"api_key", "base_url", "timeout_s", "inline_limit_bytes"} <= {
        s.name for s in info.settings
    }
    with vlmkit.Session(
        backend="gemini-api",
        api_key="k",
        base_url=fake_gemini.base_url,
        timeout_s="30",
        max_image_side="128",
        keep_files="yes",
        reuse_upload_min_bytes="none",
        temperature="0.5",
    ) as session:
        backend = session.backend
        assert backend.timeout_s == 30.0 and backend.keep_files is True
        assert backend.image_policy.max_side == 128 and backend.reuse_upload_min_bytes is None
        session.describe(photo())
    assert fake_gemini.requests_of()[0].generation_config["temperature"] == 0.5
    with pytest.raises(ConfigError, match=r"jpeg_quality"):
        vlmkit.Session(backend="gemini-api", api_key="k", jpeg_quality="200")


def test_capability_table_refuses_known_bad_thinking_settings(fake_gemini, gemini_session):
    # gemini-2.5-pro is retired on the Gemini API (routed to 3.8 Flash); an empty retirement
    # table keeps its own capabilities, as on an endpoint that still serves it.
    with pytest.warns(RetiredModelWarning, match="gemini-2.5-pro was shut down"):
        routed = gemini_session(model="gemini-2.5-pro")
    assert routed.backend.caps.thinking == "level"  # 3.8 Flash answers it
    pro = gemini_session(model="gemini-2.5-pro", retired=RetiredTable([]))
    with pytest.raises(ConfigError, match=r"cannot turn thinking off.*128"):
        pro.detect(photo(), "cats", thinking_budget=0)
    with pytest.raises(ConfigError, match=r"thinking_budget.*not thinking_level"):
        pro.detect(photo(), "cats", thinking_level="low")
    three = gemini_session(model="gemini-3.1-pro-preview")
    with pytest.raises(ConfigError, match=r"thinking_level.*not a budget"):
        three.detect(photo(), "cats", thinking_budget=0)
    with pytest.raises(ConfigError, match=r"low / medium / high"):
        three.detect(photo(), "cats", thinking_level="minimal")
    assert fake_gemini.requests_of() == []
    fake_gemini.add_rule(text=BOXES)
    pro.detect(photo(), "cats")  # the table's default for 2.5 Pro: its lowest budget
    assert fake_gemini.requests_of()[-1].thinking_budget == 128


def test_a_setting_refused_by_the_server_names_the_option(fake_gemini, gemini_session):
    fake_gemini.add_rule(
        status=400, message="Thinking budget 0 is invalid. This model only works in thinking mode."
    )
    session = gemini_session(model="gemini-9-ultra")  # not in the table: nothing checked locally
    with pytest.raises(
        SettingRefused,
        match=r"gemini-9-ultra refused thinking_budget=0: .*Thinking budget 0 is invalid",
    ) as info:
        session.detect(photo(), "cats", thinking_budget=0)
    assert isinstance(info.value, vlmkit.InvalidRequest)
    assert info.value.option == "thinking_budget"
    assert len(fake_gemini.requests_of()) == 1  # a 400 is never retried


def test_refused_default_thinking_falls_back_to_the_model_default(fake_gemini, gemini_session):
    fake_gemini.add_rule(
        match=lambda req: "thinking_config" in req.generation_config,
        status=400,
        message="Thinking level is not supported for this model.",
    )
    fake_gemini.add_rule(text=BOXES)
    session = gemini_session(model="gemini-3-flash-preview")

    assert len(session.detect(photo(), "cats")) == 2
    assert len(session.detect(photo(), "cats")) == 2

    first, second, third = fake_gemini.requests_of()
    assert first.status == 400 and "thinking_config" in first.generation_config
    assert "thinking_config" not in second.generation_config
    assert "thinking_config" not in third.generation_config  # remembered


def test_segmentation_on_a_model_not_trained_for_it_is_unsupported(fake_gemini, gemini_session):
    session = gemini_session(model="gemma-3-27b-it")
    with pytest.raises(UnsupportedTask, match=r"cannot segment") as info:
        session.segment(photo(), "cups")
    for model in SEGMENTATION_MODELS:  # names the models that can
        assert model in str(info.value)
    assert fake_gemini.requests_of() == []
    fake_gemini.add_rule(text=BOXES)
    assert session.detect(photo(), "cups").finish is vlmkit.FinishReason.STOP


def test_unknown_model_gets_defaults_and_a_note(fake_gemini, gemini_session, caplog):
    fake_gemini.add_rule(text=BOXES)
    with caplog.at_level("INFO", logger="vlmkit_gemini.models"):
        session = gemini_session(model="gemini-7-nano-exp")
    dets = session.detect(photo(), "cats")
    assert len(dets) == 2
    (req,) = fake_gemini.requests_of()
    assert "thinking_config" not in req.generation_config
    assert dets.provenance.usage.cost_usd is None  # no price known: no made-up cost
    assert any("gemini-7-nano-exp" in r.message for r in caplog.records)


def test_price_overrides_and_session_usage(fake_gemini, gemini_session):
    session = gemini_session(prices={MODEL: Price(input=1.0, output=1.0)})
    result = session.describe(photo())
    usage = result.provenance.usage
    assert usage.cost_usd == pytest.approx(usage.total_tokens / 1e6)
    session.describe(photo())
    assert session.usage.calls == 2
    assert session.usage.cost_usd == pytest.approx(2 * usage.cost_usd)


# ---- authentication and configuration from the environment ----------------------------------


def test_api_key_and_base_url_from_the_environment(fake_gemini, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "env-key")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake_gemini.base_url)
    with vlmkit.Session(backend="gemini-api") as session:
        assert session.describe(photo()).text == "ok"
    monkeypatch.setenv("GOOGLE_API_KEY", "google-key")  # the SDK's order: GOOGLE_API_KEY first
    with vlmkit.Session(backend="gemini-api") as session:
        session.describe(photo())
    first, second = fake_gemini.requests_of()
    assert (first.api_key, second.api_key) == ("env-key", "google-key")


def test_missing_api_key_is_an_auth_error_saying_what_to_do():
    with pytest.raises(AuthError, match=r"GEMINI_API_KEY") as info:
        vlmkit.Session(backend="gemini-api")
    assert "--config api_key=..." in str(info.value)  # what a CLI user types


# ---- the client -----------------------------------------------------------------------------


def test_client_is_kept_and_closed_with_the_session(fake_gemini):
    session = vlmkit.Session(
        backend="gemini-api", api_key=TEST_API_KEY, base_url=fake_gemini.base_url
    )
    backend = session.backend
    assert isinstance(backend, GeminiApiBackend)
    client = backend.client
    assert client.models is not None
    session.describe(photo())
    session.close()
    assert client._api_client._httpx_client.is_closed


def test_async_transport_is_pinned_to_httpx2(fake_gemini, monkeypatch):
    from google.genai import _api_client

    monkeypatch.setattr(_api_client, "has_aiohttp", True)  # as if aiohttp were importable
    with vlmkit.Session(
        backend="gemini-api", api_key=TEST_API_KEY, base_url=fake_gemini.base_url
    ) as session:
        api = session.backend.client._api_client
        assert not api._use_aiohttp()
        assert isinstance(api._async_httpx_client, httpx2.AsyncClient)
        assert isinstance(api._async_httpx_client._transport, httpx2.AsyncHTTPTransport)
        assert api._http_options.retry_options is None  # vlmkit owns the retry policy


def test_many_threads_share_one_backend(fake_gemini, gemini_session):
    fake_gemini.latency_s = 0.1
    fake_gemini.add_rule(text=BOXES)
    session = gemini_session()
    images = [photo(64, 48, seed=i) for i in range(24)]
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(image):
        try:
            return session.detect(image, "cats")
        except BaseException as err:  # pragma: no cover - reported below
            with lock:
                errors.append(err)
            raise

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(run, images))
    assert not errors
    assert all(len(r) == 2 for r in results)
    assert fake_gemini.max_in_flight >= 8
    assert session.backend.concurrency == 16 and session.backend.thread_safe


def test_large_photos_keep_every_call_in_flight_within_the_pixel_budget(
    fake_gemini, gemini_session, tmp_path
):
    """The backend frees each photo's pixels once its request is built, so the run's pixel
    budget (here two of these photos) bounds the decoding, not the wait for the answers: all
    four calls are out together (two before vlmkit.release_pixels)."""
    fake_gemini.latency_s = 0.3
    fake_gemini.add_rule(text=BOXES)
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(8):
        photo(3000, 2000, seed=index).save(folder / f"{index}.jpg", quality=60)  # 6 MP
    session = gemini_session()
    run = session.run("detect", [folder], "cats", out_dir=tmp_path / "out", concurrency=4,
                      pixel_budget=12_000_000)  # fmt: skip
    outcomes = list(run)
    assert [o.status for o in outcomes] == ["done"] * 8, [o.error for o in outcomes]
    assert all(o.result.image_size == (3000, 2000) and len(o.result) == 2 for o in outcomes)
    assert fake_gemini.max_in_flight == 4


def test_a_run_sends_upright_photos_without_decoding_them_at_full_size(
    fake_gemini, gemini_session, tmp_path, decodes
):
    """Each photo is checked by a decode at 1/8 scale (vlmkit.jpegcheck) and sent as its
    file's bytes; nothing decodes its 640×480 pixels (before: every photo, in full)."""
    fake_gemini.add_rule(text=BOXES)
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(6):
        photo(640, 480, seed=index).save(folder / f"{index}.jpg")
    run = gemini_session().run("detect", [folder], "cats", out_dir=tmp_path / "out")
    outcomes = list(run)
    assert [o.status for o in outcomes] == ["done"] * 6, [o.error for o in outcomes]
    assert all(o.result.image_size == (640, 480) and len(o.result) == 2 for o in outcomes)
    assert decodes == [(80, 60)] * 6
    sent = [data for request in fake_gemini.requests for _mime, data in request.inline_data]
    assert sorted(sent) == sorted((folder / f"{i}.jpg").read_bytes() for i in range(6))


def test_photos_that_max_image_side_halves_are_decoded_at_reduced_scale_only(
    fake_gemini, gemini_session, tmp_path, decodes
):
    """Each photo is checked at 1/8 scale and resized from a decode at 1/2 (1600×1200 sent at
    800 px); nothing decodes it at full size (before: every photo, in full)."""
    fake_gemini.add_rule(text=BOXES)
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(4):
        photo(1600, 1200, seed=index).save(folder / f"{index}.jpg")
    run = gemini_session(max_image_side=800).run(
        "detect", [folder], "cats", out_dir=tmp_path / "out"
    )
    outcomes = list(run)
    assert [o.status for o in outcomes] == ["done"] * 4, [o.error for o in outcomes]
    assert all(o.result.image_size == (1600, 1200) and len(o.result) == 2 for o in outcomes)
    assert sorted(decodes) == [(200, 150)] * 4 + [(800, 600)] * 4
    sent = [data for request in fake_gemini.requests for _mime, data in request.inline_data]
    assert [Image.open(io.BytesIO(data)).size for data in sent] == [(800, 600)] * 4


def test_session_run_keeps_many_calls_in_flight(fake_gemini, gemini_session, tmp_path):
    fake_gemini.latency_s = 0.1
    fake_gemini.add_rule(text=BOXES)
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(20):
        photo(64, 48, seed=index).save(folder / f"{index}.jpg")
    session = gemini_session()
    run = session.run("detect", [folder], "cats", out_dir=tmp_path / "out")
    outcomes = list(run)
    assert len(outcomes) == 20 and run.summary.done == 20 and run.summary.failed == 0
    assert fake_gemini.max_in_flight >= 10  # the runner uses the backend's concurrency (16)
    assert run.summary.usage.cost_usd > 0

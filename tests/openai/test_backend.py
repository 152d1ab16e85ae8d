"""The openai backend against a loopback OpenAI-compatible server: boxes per model family,
image budgets, retries and the error tree."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

import vlmkit
from vlmkit.testing import check_backend, oracle_samples, tolerance_px

GEMMA = "google/gemma-3-4b-it"
QWEN = "Qwen/Qwen2.5-VL-7B-Instruct"
QWEN3 = "Qwen/Qwen3-VL-8B-Instruct"


def sent_image(body) -> Image.Image:
    url = body["messages"][-1]["content"][0]["image_url"]["url"]
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


@pytest.mark.parametrize(
    ("model", "asks"),
    [
        (GEMMA, '"box_2d" as [ymin, xmin, ymax, xmax] normalized to 0-1000'),
        (QWEN, '"bbox_2d" as [x1, y1, x2, y2] in pixel coordinates'),
        (QWEN3, '"bbox_2d" as [x1, y1, x2, y2] normalized to 0-1000'),
    ],
)
def test_each_family_gets_its_prompt_and_boxes_land_on_the_targets(server, model, asks):
    report = check_backend("openai", model=model, base_url=server.url, tasks=["detect"])
    report.assert_ok()
    assert "boxes: within tolerance of the oracle" in report.checked
    assert "detect(huge-3001x2003.jpg)" in report.checked
    prompt = server.requests[0]["messages"][-1]["content"][-1]["text"]
    assert asks in prompt


def test_qwen_images_are_sent_on_the_servers_28px_grid(server):
    sample = next(s for s in oracle_samples() if s.name.startswith("huge"))
    with vlmkit.Session("openai", model=QWEN, base_url=server.url) as session:
        dets = session.detect(sample.data, ["red square", "blue square"])
    width, height = sent_image(server.requests[0]).size
    assert width % 28 == 0 and height % 28 == 0
    found = dict(zip(dets.labels, dets.xyxy, strict=True))
    for target in sample.targets:
        assert np.abs(found[target.label] - target.xyxy).max() <= tolerance_px(sample.size)


def sent_bytes(body) -> bytes:
    url = body["messages"][-1]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    return base64.b64decode(url.split(",", 1)[1])


def test_an_unchanged_jpeg_is_sent_as_its_file_and_only_checked_not_decoded(
    tmp_path, server, decodes
):
    """A photo the backend sends unchanged goes as the file's own bytes (before: decoded in
    full and encoded again as a second-generation JPEG); a resized one is encoded as before."""
    server.text = '[{"box_2d": [100, 200, 500, 600], "label": "cat"}]'
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    photos = (("small.jpg", (640, 480)), ("large.jpg", (2000, 1500)), ("huge.jpg", (3200, 2400)))
    for name, size in photos:
        pixels = rng.integers(0, 255, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).resize(size).save(folder / name, quality=80)
    with vlmkit.Session("openai", model=GEMMA, base_url=server.url, cache=False) as session:
        assert session.backend.sends_image_files  # Gemma on vLLM: no 28-px grid
        outcomes = list(session.run("detect", [folder], "cat", out_dir=tmp_path / "out"))
    assert [o.status for o in outcomes] == ["done"] * 3
    sent = {o.key: sent_bytes(body) for o, body in zip(outcomes, server.requests, strict=True)}
    assert sent["small.jpg"] == (folder / "small.jpg").read_bytes()
    for name in ("large.jpg", "huge.jpg"):  # fit(1536), encoded
        assert Image.open(io.BytesIO(sent[name])).size == (1536, 1152)
    # the small one checked at 1/8 only; the large one decoded (1536 is more than half of it);
    # the huge one checked, then decoded at 1/2 for its resize, never at 3200×2400
    assert sorted(decodes) == [(80, 60), (400, 300), (1600, 1200), (2000, 1500)]
    with vlmkit.Session("openai", model=QWEN, base_url=server.url) as session:
        assert not session.backend.sends_image_files  # Qwen resizes to its grid


def test_image_budgets_and_options_reach_the_server(server):
    with vlmkit.Session("openai", model=GEMMA, base_url=server.url, api_key="sk-t") as session:
        session.describe(np.zeros((40, 60, 3), np.uint8), max_soft_tokens=140, temperature=0.0)
        with pytest.raises(vlmkit.ConfigError):
            session.describe(np.zeros((40, 60, 3), np.uint8), max_soft_tokens=100)
    body = server.requests[0]
    assert body["mm_processor_kwargs"] == {"max_soft_tokens": 140}
    assert body["temperature"] == 0.0 and "max_soft_tokens" not in body
    assert server.headers[0]["Authorization"] == "Bearer sk-t"


def test_a_429_waits_what_retry_after_asks_then_succeeds(server, waits):
    server.fail_next(429, retry_after="3")
    with vlmkit.Session("openai", model=GEMMA, base_url=server.url) as session:
        session.backend.client.sleep = waits.append
        text = session.describe(np.zeros((20, 20, 3), np.uint8)).text
    assert text and waits == [3.0] and len(server.requests) == 2


def test_a_long_retry_after_goes_to_the_runner_without_waiting(server, waits):
    server.fail_next(429, retry_after="900")
    with vlmkit.Session("openai", model=GEMMA, base_url=server.url) as session:
        session.backend.client.sleep = waits.append
        with pytest.raises(vlmkit.RateLimited) as caught:
            session.describe(np.zeros((20, 20, 3), np.uint8))
    assert caught.value.retry_after == 900.0 and waits == [] and len(server.requests) == 1


def test_a_503_storm_is_retried_with_backoff_then_given_up(server, waits):
    server.fail_next(503, times=3)
    with vlmkit.Session("openai", model=GEMMA, base_url=server.url) as session:
        session.backend.client.sleep = waits.append
        assert session.describe(np.zeros((20, 20, 3), np.uint8)).text
        assert len(waits) == 3 and waits[0] < waits[2]  # exponential backoff
        server.fail_next(503, times=20)
        with pytest.raises(vlmkit.TransientError, match="gave up after 5 attempts"):
            session.describe(np.zeros((20, 20, 3), np.uint8))
    assert len(server.requests) == 4 + 5


def test_a_timeout_is_a_transient_error(server):
    server.stall_next(2.0)
    with (
        vlmkit.Session(
            "openai", model=GEMMA, base_url=server.url, timeout=0.2, max_retries=0
        ) as session,
        pytest.raises(vlmkit.TransientError, match="timed out"),
    ):
        session.describe(np.zeros((20, 20, 3), np.uint8))


def test_a_refused_key_is_an_auth_error_that_keeps_the_key_secret(server):
    server.fail_next(401)
    with (
        vlmkit.Session("openai", model=GEMMA, base_url=server.url, api_key="sk-secret") as s,
        pytest.raises(vlmkit.AuthError) as caught,
    ):
        s.describe(np.zeros((20, 20, 3), np.uint8))
    assert "sk-secret" not in str(caught.value) and len(server.requests) == 1


def test_concurrency_defaults_to_keeping_a_batching_server_busy(server):
    with vlmkit.Session("openai", model=GEMMA, base_url=server.url) as session:
        assert session.backend.concurrency == 32
    with vlmkit.Session("openai", model="llava", family="gemma", base_url=server.url) as s:
        assert s.backend.convention == "yxyx-1000"


def test_retry_after_may_be_an_http_date():
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    from vlmkit_openai.client import retry_after_seconds

    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    assert 100 < retry_after_seconds(later) <= 120
    assert retry_after_seconds("1.5") == 1.5
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_a_wrong_base_url_says_what_to_check(server):
    with (
        vlmkit.Session("openai", model=GEMMA, base_url=server.url + "/nope") as session,
        pytest.raises(vlmkit.InvalidRequest, match="check base_url"),
    ):
        session.describe(np.zeros((20, 20, 3), np.uint8))


def test_installed_and_found_through_its_entry_point():
    with vlmkit.Session() as session:
        info = session.backends()["openai"]
    assert info.distribution == "vlmkit-openai 0.1.0"
    assert info.tasks == {"describe", "detect", "ocr"}
    assert {o.name for o in info.settings} >= {"family", "base_url", "concurrency"}


def test_large_photos_keep_every_call_in_flight_within_the_pixel_budget(tmp_path, server):
    """The backend frees each photo's pixels once its request body is built, so a run's pixel
    budget (here two of these photos) bounds the decoding, not the wait for the answers."""
    from PIL import Image

    import vlmkit

    server.text = '[{"box_2d": [100, 200, 500, 600], "label": "cat"}]'
    server.latency_s = 0.3
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(8):
        Image.new("RGB", (3000, 2000), (index, 90, 160)).save(folder / f"{index}.png")  # 6 MP
    with vlmkit.Session(
        "openai", model="google/gemma-3-4b-it", base_url=server.url, cache=False
    ) as session:
        run = session.run("detect", [folder], "cat", out_dir=tmp_path / "out", concurrency=4,
                          pixel_budget=12_000_000)  # fmt: skip
        outcomes = list(run)
    assert [o.status for o in outcomes] == ["done"] * 8, [o.error for o in outcomes]
    assert all(o.result.image_size == (3000, 2000) and len(o.result) == 1 for o in outcomes)
    assert server.max_in_flight == 4

"""contrib/backend-example, installed by pip and found through its entry point like any
third-party backend, against a loopback OpenAI-compatible server."""

from __future__ import annotations

import base64
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

import vlmkit
from vlmkit.testing import check_backend, true_answer

ANSWER = '```json\n[{"box_2d": [100, 200, 500, 600], "label": "cat"}]\n```'


class FakeOpenAI:
    """A loopback OpenAI-compatible server. ``oracle=True``: it answers detection like a
    perfect Gemma (``yxyx-1000``) from the image it received, as the conformance check needs."""

    def __init__(self, oracle: bool = False):
        self.requests = []
        self.status = 200
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(
                    {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
                )
                content = body["messages"][-1]["content"]
                prompt = content[-1]["text"]
                text = ANSWER if "box_2d" in prompt or "Detect" in prompt else "A cat."
                if oracle and "box_2d" in prompt:
                    url = content[0]["image_url"]["url"]
                    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
                    task = "segment" if "segmentation" in prompt else "detect"
                    text = true_answer(image, "yxyx-1000", task=task)
                payload = {
                    "model": body["model"],
                    "choices": [
                        {"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 300, "completion_tokens": 20},
                }
                data = json.dumps(payload).encode()
                if fake.status != 200:
                    data = b'{"error": "nope"}'
                self.send_response(fake.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_openai():
    fake = FakeOpenAI()
    yield fake
    fake.close()


@pytest.fixture
def example(plugin_site, monkeypatch):
    monkeypatch.setenv("VLMKIT_LOAD_PLUGINS", "vlmkit-openai-compatible")


def test_found_through_its_entry_point(example):
    session = vlmkit.Session()
    info = session.backends()["openai-compatible"]
    assert info.distribution == "vlmkit-openai-compatible 0.1.0"
    assert info.tasks == {"describe", "detect", "ocr"}
    import vlmkit_openai_compatible

    assert "site" in vlmkit_openai_compatible.__file__  # the installed copy, not the source tree


def test_detect_on_a_resized_image_returns_original_pixels(example, fake_openai):
    image = np.zeros((1500, 3000, 3), dtype=np.uint8)  # the backend sends it at 1024 wide
    with vlmkit.Session(
        "openai-compatible", model="gemma3:4b", base_url=fake_openai.url, api_key="sk-test"
    ) as session:
        dets = session.detect(image, ["cat"], temperature=0.0)
    np.testing.assert_allclose(dets.xyxy, [[600, 150, 1800, 750]])
    sent = fake_openai.requests[0]
    assert sent["auth"] == "Bearer sk-test" and sent["body"]["temperature"] == 0.0
    url = sent["body"]["messages"][0]["content"][0]["image_url"]["url"]
    pixels = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert pixels.size == (1024, 512)
    assert dets.usage.prompt_tokens == 300


def test_errors_map_into_the_error_tree(example, fake_openai):
    fake_openai.status = 401
    with (
        vlmkit.Session("openai-compatible", base_url=fake_openai.url) as session,
        pytest.raises(vlmkit.AuthError),
    ):
        session.describe(np.zeros((10, 10, 3), np.uint8))


@pytest.mark.slow
def test_example_passes_the_conformance_check(plugin_site):
    """Only the example (and vlmkit's built-ins) load: the broken test plugins installed next
    to it do not fail its check, and its boxes land where the oracle drew the targets."""
    fake = FakeOpenAI(oracle=True)
    try:
        report = check_backend(
            "openai-compatible", base_url=fake.url, tasks=["detect", "describe", "segment"]
        )
        with pytest.raises(vlmkit.PluginError, match="could not load vlmkit plugin"):
            check_backend("openai-compatible", base_url=fake.url, entrypoints=True)
    finally:
        fake.close()
    report.assert_ok()
    assert "boxes: within tolerance of the oracle" in report.checked
    assert "detect(huge-3001x2003.jpg)" in report.checked

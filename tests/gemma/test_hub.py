"""An unreachable Hugging Face Hub is found with one probe, not five retries per file.

The command runs as a user would type it, in a fresh process where the Hub is not switched off
(``HF_HUB_OFFLINE`` unset); ``HF_ENDPOINT`` points at a loopback port whose listener drops every
connection, and counts them. Before the probe, transformers' first file alone took six
connections (one try and five retries) and about 50 s of backoff before the error.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("transformers")

MODEL = "google/gemma-4-E2B-it"


class DroppingListener:
    """A loopback TCP listener that closes every connection at once and counts them."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def unreachable_hub():
    listener = DroppingListener()
    yield listener
    listener.close()


@pytest.mark.slow  # a fresh process that imports torch and transformers
def test_an_unreachable_hub_fails_fast_with_the_download_hint(unreachable_hub, tmp_path: Path):
    from PIL import Image

    image = tmp_path / "photo.png"
    Image.new("RGB", (32, 24), "white").save(image)
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{unreachable_hub.port}", HF_HOME=str(tmp_path))
    command = [sys.executable, "-m", "vlmkit.cli", "describe", str(image)]
    command += ["--backend", "gemma-local", "--model", MODEL, "--config", "device=cpu"]
    command += ["--no-cache"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)

    assert done.returncode != 0
    assert "is not in the local Hugging Face cache and the Hub cannot be reached" in done.stderr
    assert f"hf download {MODEL}" in done.stderr
    assert "Retrying in" not in done.stderr
    assert unreachable_hub.connections == 1, done.stderr  # the probe, and nothing after it


class NotFoundServer:
    """A loopback HTTP server that answers 404 to everything: the Hub is there, the repo is not."""

    def __init__(self) -> None:
        import http.server

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self):
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_probe_tells_an_answer_from_no_answer(unreachable_hub, monkeypatch):
    """Any HTTP answer (404 here) means reachable; a dropped connection means not, at once."""
    from huggingface_hub import constants

    from vlmkit_gemma.hub import hub_reachable

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the suite runs with it on
    answering = NotFoundServer()
    try:
        assert hub_reachable(MODEL, endpoint=answering.url)
    finally:
        answering.close()
    assert not hub_reachable(MODEL, endpoint=f"http://127.0.0.1:{unreachable_hub.port}")
    assert unreachable_hub.connections == 1  # one try, no retries

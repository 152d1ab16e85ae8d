"""vlmkit_gemini.testing as users get it: answers per image or from a function, and the
``python -m vlmkit_gemini.testing`` server, driven through the real SDK and vlmkit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

genai = pytest.importorskip("google.genai")

from google.genai import errors, types  # noqa: E402
from PIL import Image  # noqa: E402

from tests.gemini.conftest import MODEL, TEST_API_KEY, photo  # noqa: E402
from vlmkit_gemini.testing import FakeGemini, ImageAnswers, load_function  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
SCRIPT = json.loads((SAMPLES / "offline-answers.json").read_text(encoding="utf-8"))


def _jpeg(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    return buffer.getvalue()


def _labels(name: str) -> tuple[str, ...]:
    return tuple(item["label"] for item in SCRIPT[name])


def test_answers_per_image_survive_reencoding_and_shrinking(fake_gemini, gemini_session, tmp_path):
    answers = ImageAnswers.from_json(SAMPLES / "offline-answers.json", default="[]")
    fake_gemini.add_rule(text=answers)
    session = gemini_session()
    for name in SCRIPT:
        assert session.detect(SAMPLES / name, "objects").labels == _labels(name)
    # the same photo, smaller and as PNG: recognised by its pixels, not its bytes
    smaller = tmp_path / "cat-small.png"
    with Image.open(SAMPLES / "chelsea-the-cat.jpg") as image:
        image.resize((150, 100)).save(smaller)
    assert session.detect(smaller, "objects").labels == ("cat",)
    assert len(session.detect(photo(), "objects")) == 0  # an unknown image: the default


def test_an_unknown_image_without_a_default_is_a_server_error_that_says_so(tmp_path):
    with FakeGemini() as fake:
        fake.add_rule(text=ImageAnswers({SAMPLES / "coffee.jpg": "coffee"}))
        client = genai.Client(
            api_key=TEST_API_KEY, http_options=types.HttpOptions(base_url=fake.base_url)
        )
        cup = types.Part.from_bytes(
            data=(SAMPLES / "coffee.jpg").read_bytes(), mime_type="image/jpeg"
        )
        assert client.models.generate_content(model=MODEL, contents=[cup, "what?"]).text == (
            "coffee"
        )
        other = types.Part.from_bytes(data=_jpeg(photo()), mime_type="image/jpeg")
        with pytest.raises(errors.ServerError, match="an image that is not in the table"):
            client.models.generate_content(model=MODEL, contents=[other, "what?"])
        with pytest.raises(errors.ServerError, match="carries no image"):
            client.models.generate_content(model=MODEL, contents="no image at all")
        client.close()
        assert any("no default answer" in error for error in fake.errors)


def test_a_table_entry_that_is_not_an_image_is_refused_with_its_name(tmp_path):
    (tmp_path / "answers.json").write_text(json.dumps({"missing.jpg": "x"}))
    with pytest.raises(ValueError, match=r"'missing\.jpg'.*relative to the answers file"):
        ImageAnswers.from_json(tmp_path / "answers.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(ValueError, match="JSON object mapping image files"):
        ImageAnswers.from_json(tmp_path / "list.json")


def test_answers_computed_by_a_function_from_a_file(fake_gemini, gemini_session, tmp_path):
    module = tmp_path / "answers.py"
    module.write_text(
        "def answer(request):\n"
        "    if 'count' in request.prompt_text:\n"
        "        return '3'\n"
        "    return [{'box_2d': [0, 0, 500, 500], 'label': request.model}]\n"
    )
    fake_gemini.default_text = load_function(f"{module}:answer")
    session = gemini_session()
    assert session.describe(photo(), "count the cats").text == "3"
    assert session.detect(photo(), "anything").labels == (MODEL,)
    with pytest.raises(ValueError, match="module:function"):
        load_function("no-colon")
    with pytest.raises(ValueError, match="has no function 'nope'"):
        load_function(f"{module}:nope")


def test_python_m_server_prints_its_url_answers_and_stops_on_sigterm(tmp_path):
    command = [sys.executable, "-m", "vlmkit_gemini.testing", "--answer", "hello offline"]
    server = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        base_url = server.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        client = genai.Client(api_key="anything", http_options=types.HttpOptions(base_url=base_url))
        assert client.models.generate_content(model=MODEL, contents="hi").text == "hello offline"
        client.close()
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=30)
    assert server.returncode == 0, stderr
    assert "stopped after 1 generation requests" in stderr


def test_python_m_server_refuses_conflicting_options():
    command = [sys.executable, "-m", "vlmkit_gemini.testing", "--answer", "a"]
    command += ["--answer-function", "x:y"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "pick one" in done.stderr
